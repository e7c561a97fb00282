"""entry: the IDS's `int main(void)` becomes @__llview_ids_main.

The runtime owns the process's real main (options, connection, symbol
resolution) and calls the IDS's entry point through this name. An IDS without
main, or whose main takes arguments, gets a diagnostic.
"""

from __future__ import annotations

from llview.irtext import ModuleView
from llview.passes.context import PassContext, PassStats
from llview.runtime_abi import IDS_MAIN, runtime_abi

NAME = "entry"


def run(view: ModuleView, ctx: PassContext) -> PassStats:
    stats = PassStats(NAME)
    if IDS_MAIN in view.defined_functions or IDS_MAIN in view.declarations:
        ctx.error(view, None, f"the IDS defines @{IDS_MAIN} itself: it was processed by llview "
                              "before, or uses a name reserved for llview")
        return stats
    main = next((f for f in view.functions if f.name == "main"), None)
    if main is None:
        ctx.error(view, None, "the IDS program has no 'int main(void)' (its entry point)")
        return stats
    ftype = str(main.ref.global_value_type)
    if ftype != runtime_abi().function(IDS_MAIN).function_type:  # what the runtime calls
        ctx.error(view, view.function_location(main),
                  f"the IDS entry point must be 'int main(void)' (found '{ftype}'): llview's "
                  "runtime owns the process's arguments and options")
        return stats
    view.rename("main", IDS_MAIN)
    stats.count("main renamed")
    return stats
