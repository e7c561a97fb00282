"""llview's IR passes, in pipeline order: one module per rewrite, each with run(view, ctx)."""

from collections.abc import Callable

from llview.irtext import ModuleView
from llview.passes import (
    entry,
    footprints,
    forbidden_calls,
    guest_loads,
    kernel_symbols,
    store_guard,
)
from llview.passes.context import PassContext, PassStats

PassFunction = Callable[[ModuleView, PassContext], PassStats]

# Registry order is pipeline order: kernel symbols become SSA values first, so the later passes
# see every use of one; footprints reads the guest loads guest_loads made; string calls are
# redirected before forbidden_calls looks for kernel calls.
PASSES: dict[str, PassFunction] = {
    kernel_symbols.NAME: kernel_symbols.run,
    guest_loads.NAME: guest_loads.run,
    footprints.NAME: footprints.run,
    store_guard.NAME: store_guard.run,
    forbidden_calls.NAME: forbidden_calls.run,
    entry.NAME: entry.run,
}
