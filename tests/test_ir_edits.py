"""ModuleView's editing layer (llview/irtext.py) on small modules: each operation's text, and
that the result still parses and verifies. The golden files test the passes built on it."""

from __future__ import annotations

import pytest

from llview.irtext import Inst, ModuleView

HEADER = ('source_filename = "ids.c"\n'
          'target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-'
          'f80:128-n8:16:32:64-S128"\n'
          'target triple = "x86_64-pc-linux-gnu"\n')

MODULE = HEADER + """
@x = global i32 0
@x2 = global i32 1
@msg = constant [3 x i8] c"@x\\00"

define float @f(ptr %p, i1 %c) {
entry:
  %v = load volatile i32, ptr %p, align 4
  %load = load i32, ptr %p, align 4
  store atomic i32 %v, ptr %p seq_cst, align 4
  %n = tail call i64 @strlen(ptr noundef nonnull %p) #0
  %s = add i32 %v, 1
  store i32 %s, ptr @x, align 4
  store i32 %s, ptr @x2, align 4
  br i1 %c, label %a, label %b

a:
  br label %b

b:
  %m = phi fast float [ 1.0, %entry ], [ 2.0, %a ]
  ret float %m
}

declare i64 @strlen(ptr)

attributes #0 = { nounwind }
"""


def _view(text: str = MODULE) -> ModuleView:
    return ModuleView(text)


def _inst(view: ModuleView, name_or_opcode: str, nth: int = 0) -> Inst:
    found = [i for i in view.functions[0].insts if name_or_opcode in (i.name, i.opcode)]
    return found[nth]


def _rendered(view: ModuleView) -> str:
    text = view.render()
    ModuleView(text)  # parses and verifies
    return text


def test_replace_pointer_operand_of_load_and_store_keeps_flags() -> None:
    view = _view()
    load, store = _inst(view, "%v"), _inst(view, "store")
    assert view.replace_pointer_operand(load, "%q") == "%p"
    assert view.replace_pointer_operand(_inst(view, "%load"), "%q") == "%p"
    assert view.replace_pointer_operand(store, "%q") == "%p"
    view.insert_instruction(load, "getelementptr i8, ptr %p, i64 8", name="%q")
    text = _rendered(view)
    assert "  %q = getelementptr i8, ptr %p, i64 8\n  %v = load volatile i32, ptr %q, align 4\n" \
        "  %load = load i32, ptr %q, align 4\n" in text
    assert "  store atomic i32 %v, ptr %q seq_cst, align 4\n" in text


def test_replace_pointer_operand_refuses_other_instructions() -> None:
    view = _view()
    with pytest.raises(ValueError, match="no pointer operand"):
        view.replace_pointer_operand(_inst(view, "%s"), "%q")


def test_insert_call_and_replace_with_call() -> None:
    view = _view()
    add = _inst(view, "%s")
    assert view.insert_call(add, "ptr", "@g", ["ptr %p", "i32 7"], name="%r") == "%r"
    assert view.insert_call(add, "void", "@h", []) is None
    view.replace_with_call(_inst(view, "store", 1), "void", "@h", [])
    view.add_global("declare ptr @g(ptr, i32)")
    view.add_global("declare void @h()")
    text = _rendered(view)
    assert "  %r = call ptr @g(ptr %p, i32 7)\n  call void @h()\n  %s = add i32 %v, 1\n" \
        "  call void @h()\n" in text


def test_replace_call_keeps_result_attributes_and_tail() -> None:
    view = _view()
    call = _inst(view, "%n")
    assert view.call_arguments(call) == ["ptr noundef nonnull %p"]
    view.replace_call(call, "@strnlen", ["ptr %p", "i64 16"])
    view.add_global("declare i64 @strnlen(ptr, i64)")
    assert "  %n = tail call i64 @strnlen(ptr %p, i64 16) #0\n" in _rendered(view)


def test_replace_operand_matches_whole_global_names_outside_strings() -> None:
    view = _view()
    for k in range(2):
        view.replace_operand(_inst(view, "store", 1 + k), "@x", "%p")
    text = _rendered(view)
    assert "store i32 %s, ptr %p, align 4\n  store i32 %s, ptr @x2, align 4" in text


def test_phi_incoming_round_trip_keeps_flags() -> None:
    view = _view()
    phi = _inst(view, "%m")
    ty, values = view.phi_incoming(phi)
    assert (ty, values) == ("float", ["1.000000e+00", "2.000000e+00"])
    view.replace_phi_incoming(phi, [values[0], "3.0"])
    assert "  %m = phi fast float [ 1.000000e+00, %entry ], [ 3.0, %a ]\n" in _rendered(view)


def test_insert_at_entry_goes_ahead_of_other_insertions() -> None:
    view = _view()
    first = view.functions[0].insts[0]
    view.insert_instruction(first, "add i32 1, 2", name="%late")
    view.insert_at_entry(view.functions[0], ["%e0 = add i32 0, 0", "%e1 = add i32 1, 1"])
    text = _rendered(view)
    assert "entry:\n  %e0 = add i32 0, 0\n  %e1 = add i32 1, 1\n  %late = add i32 1, 2\n" \
        in text


def test_delete_instruction() -> None:
    view = _view()
    view.delete(_inst(view, "store", 2))
    assert "@x2, align" not in _rendered(view)


def test_module_level_additions_are_made_once() -> None:
    view = _view()
    view.add_type("%struct.pair", "{ ptr, i32 }")
    view.add_type("%struct.pair", "{ ptr, i32 }")
    assert view.add_declaration("strlen", "declare i64 @strlen(ptr)") == "@strlen"
    assert view.add_declaration("g", "declare ptr @g()") == "@g"
    assert view.add_declaration("g", "declare ptr @g()") == "@g"
    view.add_global("@pairs = global [0 x %struct.pair] zeroinitializer")
    text = _rendered(view)
    assert text.count("%struct.pair = type { ptr, i32 }") == 1
    assert text.count("declare i64 @strlen(ptr)") == 1
    assert text.count("declare ptr @g()") == 1


def test_remove_global_and_declaration() -> None:
    view = ModuleView(HEADER + "@k = external global i32\ndeclare void @kf()\n")
    view.remove_global("k")
    view.remove_declaration("kf")
    text = _rendered(view)
    assert "@k" not in text and "@kf" not in text
    with pytest.raises(ValueError, match="no declaration of nothing"):
        view.remove_declaration("nothing")


def test_rename_leaves_strings_metadata_and_longer_names() -> None:
    view = ModuleView(HEADER + """
@main.count = global i32 0
@s = constant [6 x i8] c"@main\\00"

define i32 @main() !dbg !3 {
  ret i32 0
}

define i32 @caller() {
  %r = call i32 @main()
  ret i32 %r
}

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}
!0 = distinct !DICompileUnit(language: DW_LANG_C11, file: !1, emissionKind: LineTablesOnly)
!1 = !DIFile(filename: "ids.c", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!3 = distinct !DISubprogram(name: "main", linkageName: "@main", scope: !1, file: !1, \
line: 1, spFlags: DISPFlagDefinition, unit: !0)
""")
    view.rename("main", "the entry")
    text = _rendered(view)
    assert 'define i32 @"the entry"() !dbg !3 {' in text
    assert 'call i32 @"the entry"()' in text
    assert "@main.count" in text and 'c"@main\\00"' in text and 'linkageName: "@main"' in text


def test_line_level_primitives_still_work() -> None:
    """Passes written against insert_before/replace_line/current keep working."""
    view = _view()
    add = _inst(view, "%s")
    view.insert_before(add.line, ["  %w = add i32 %v, 2"])
    view.replace_line(add.line, view.current(add.line).replace("add i32 %v, 1", "add i32 %w, 1"))
    assert "  %w = add i32 %v, 2\n  %s = add i32 %w, 1\n" in _rendered(view)
