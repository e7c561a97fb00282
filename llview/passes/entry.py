"""entry: the IDS's `int main(void)` becomes @__llview_ids_main.

The runtime owns the process's real main (options, connection, symbol
resolution) and calls the IDS's entry point through this name. An IDS without
main, or whose main takes arguments, gets a diagnostic.
"""

from __future__ import annotations

import re

from llview.irtext import ModuleView, outside_quotes_sub
from llview.passes.context import PassContext, PassStats

NAME = "entry"
IDS_MAIN = "__llview_ids_main"
_MAIN_REF = re.compile(r"@main(?![-\w.$])")


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
    if not re.fullmatch(r"i32 \(\)", ftype):
        ctx.error(view, view.function_location(main),
                  f"the IDS entry point must be 'int main(void)' (found '{ftype}'): llview's "
                  "runtime owns the process's arguments and options")
        return stats
    for i, ln in enumerate(view.lines):
        if "@main" in ln and not ln.startswith("!"):
            view.replace_line(i, outside_quotes_sub(_MAIN_REF, lambda _m: "@" + IDS_MAIN,
                                                    view.current(i)))
    stats.count("main renamed")
    return stats
