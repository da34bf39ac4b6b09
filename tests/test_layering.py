"""The import structure: the library's layers import only downward, the application builds on the
library and never the reverse, no cycle between subpackages, no function-local import of our own
modules (the way cycles used to be hidden). Read from the source with `ast`, module level and
function level alike."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Lowest first. A unit may import itself and units of lower layers; units on one layer are
# independent of each other. `lit_keras` (the package `__init__`) sits above the library it
# re-exports; the application sits above all of the library.
LAYERS = [
    ("lit_keras.env", "lit_keras.cache", "lit_keras.serialization", "lit_keras.assets",
     "lit_keras.errors"),
    ("lit_keras.data",),
    ("lit_keras.layers", "lit_keras.losses"),
    ("lit_keras.towers",),
    ("lit_keras.models",),
    ("lit_keras.evaluation",),
    ("lit_keras.training", "lit_keras.export"),
    ("lit_keras",),
    ("lit_keras_app.native_log",),
    ("lit_keras_app.ports", "lit_keras_app.console"),
    ("lit_keras_app.datasets",),
    ("lit_keras_app.resolve",),
    ("lit_keras_app.cli",),
    ("lit_keras_app",),
]
RANK = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def unit_of(module):
  """The layer unit a dotted module name belongs to (its longest declared prefix)."""
  parts = module.split(".")
  for n in range(len(parts), 0, -1):
    name = ".".join(parts[:n])
    if name in RANK:
      return name
  return None


def _modules():
  for package in ("lit_keras", "lit_keras_app"):
    for dirpath, _, files in os.walk(os.path.join(ROOT, package)):
      for f in files:
        if f.endswith(".py"):
          path = os.path.join(dirpath, f)
          rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
          yield (rel[:-len(".__init__")] if rel.endswith(".__init__") else rel), path


def _imports(module, path):
  """[(imported module, line, inside a function)] of our own packages."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  is_package = path.endswith("__init__.py")
  out = []

  def visit(node, in_function):
    for child in ast.iter_child_nodes(node):
      inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                 ast.Lambda))
      if isinstance(child, ast.Import):
        out.extend((a.name, child.lineno, in_function) for a in child.names)
      elif isinstance(child, ast.ImportFrom):
        if child.level:  # relative: resolve against this module's package
          base = module.split(".")
          base = base[:len(base) - child.level + (1 if is_package else 0)]
          target = ".".join(base + ([child.module] if child.module else []))
        else:
          target = child.module
        for a in child.names:  # `from pkg import sub` may import the submodule pkg.sub
          out.append((f"{target}.{a.name}", child.lineno, in_function))
      visit(child, inner)

  visit(tree, False)
  return [(m, line, fn) for m, line, fn in out if m.split(".")[0] in ("lit_keras",
                                                                      "lit_keras_app")]


def violations(module, path):
  """What is wrong with `module`'s imports of our own packages (empty if nothing)."""
  problems = []
  mine = unit_of(module)
  for target, line, in_function in _imports(module, path):
    where = f"{os.path.relpath(path, ROOT)}:{line}: {module} imports {target}"
    if in_function:
      problems.append(f"{where} inside a function")
    theirs = unit_of(target)
    if theirs is None or theirs == mine:
      continue
    if RANK[theirs] > RANK[mine]:
      problems.append(f"{where}, upward ({mine} → {theirs})")
    elif RANK[theirs] == RANK[mine]:
      problems.append(f"{where}: {mine} and {theirs} share a layer and must not import each "
                      "other")
  return problems


def cycles(edges):
  """Cycles of a {node: set of nodes} graph, by depth-first search for back edges."""
  state, found = {}, []

  def dfs(node, stack):
    state[node] = "open"
    for nxt in sorted(edges.get(node, ())):
      if state.get(nxt) == "open":
        found.append(stack[stack.index(nxt):] + [nxt])
      elif nxt not in state:
        dfs(nxt, stack + [nxt])
    state[node] = "done"

  for node in sorted(edges):
    if node not in state:
      dfs(node, [node])
  return found


MODULES = dict(_modules())


def test_every_module_has_a_declared_layer():
  assert {m for m in MODULES if unit_of(m) is None} == set()


def test_imports_run_downward_and_none_is_hidden_in_a_function():
  problems = [p for module, path in sorted(MODULES.items()) for p in violations(module, path)]
  assert problems == []


def test_no_cycle_between_subpackages():
  edges = {}
  for module, path in MODULES.items():
    for target, _, _ in _imports(module, path):
      a, b = unit_of(module), unit_of(target)
      if a and b and a != b:
        edges.setdefault(a, set()).add(b)
  assert cycles(edges) == []


@pytest.mark.parametrize("source,bad", [
    ("from lit_keras.training import task\n", "upward"),
    ("import lit_keras_app.resolve\n", "upward"),
    ("def f():\n  from lit_keras.data import schema\n", "inside a function"),
    ("from lit_keras import losses\n", "share a layer"),
    ("from . import logit_scale\nfrom ..data import schema\n", None),
])
def test_the_checker_catches_violations(tmp_path, source, bad):
  """A module of the `layers` layer that imports upward, hides an import in a function or
  imports a sibling of its layer is reported; relative imports downward are fine."""
  path = tmp_path / "bad.py"
  path.write_text(source)
  found = violations("lit_keras.layers.bad", str(path))
  if bad is None:
    assert found == []
  else:
    assert len(found) == 1 and bad in found[0], found


def test_the_cycle_search_finds_cycles():
  assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
  assert cycles({"a": {"b", "c"}, "b": {"c"}}) == []
