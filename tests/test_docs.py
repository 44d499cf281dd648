"""The documentation lists the whole public API, and the gallery is well formed.

Cheap checks that need no Sphinx: every name in ``sklearn_robust.__all__`` and in
the ``__all__`` of every public subpackage and module is documented in
``docs/api.rst`` (as an ``autosummary`` entry, an ``autodata``/``autoclass``/
``autofunction`` directive, or, for a module, an ``automodule``), every entry
there resolves to a public object, and every gallery example compiles and opens
with the title block that sphinx-gallery needs.
"""

import ast
import importlib
import pathlib
import pkgutil
import re

import pytest

import sklearn_robust

ROOT = pathlib.Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api.rst"
EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))

# names of __all__ that are not objects with a page of their own; each must be
# mentioned in the API page's text
NOT_OBJECTS = {"__version__"}


def _public_modules():
    """sklearn_robust and every public submodule that defines ``__all__``."""
    modules = [sklearn_robust]
    for info in pkgutil.walk_packages(sklearn_robust.__path__, "sklearn_robust."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        if hasattr(module, "__all__"):
            modules.append(module)
    return modules


def _resolve(dotted):
    """The object named by a dotted path (a module, or a module's attribute)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def _documented():
    """(objects, module names, raw text) documented by docs/api.rst."""
    text = API.read_text()
    current = None
    in_autosummary = False
    objects, modules, entries = [], set(), []
    for line in text.splitlines():
        directive = re.match(r"\.\. ([\w:]+)::\s*(\S*)", line)
        if directive:
            kind, arg = directive.groups()
            in_autosummary = kind == "autosummary"
            if kind in ("currentmodule", "py:currentmodule"):
                current = arg
            elif kind == "automodule":
                current = arg
                modules.add(arg)
            elif kind in ("autoclass", "autofunction", "autodata", "autoexception"):
                entries.append(arg if arg.startswith("sklearn_robust")
                               else f"{current}.{arg}")
            continue
        if in_autosummary:
            if not line.strip() or line.strip().startswith(":"):
                continue
            if not line.startswith(" "):
                in_autosummary = False
                continue
            entries.append(f"{current}.{line.strip()}")
    for entry in entries:
        objects.append((entry, _resolve(entry)))
    return objects, modules, text


def test_api_page_exists():
    assert API.is_file()


def test_every_entry_of_the_api_page_resolves():
    objects, _, _ = _documented()
    assert objects, "no autosummary entries found in docs/api.rst"
    private = [entry for entry, _ in objects if entry.rsplit(".", 1)[-1][0] == "_"]
    assert not private, f"private names in docs/api.rst: {private}"


@pytest.mark.parametrize("module", _public_modules(), ids=lambda m: m.__name__)
def test_every_public_name_is_in_the_api_reference(module):
    objects, modules, text = _documented()
    documented = {id(obj) for _, obj in objects}
    missing = []
    for name in module.__all__:
        obj = getattr(module, name)
        if name in NOT_OBJECTS:
            if f"{module.__name__}.{name}" not in text:
                missing.append(name)
        elif isinstance(obj, type(sklearn_robust)):
            if obj.__name__ not in modules:
                missing.append(name)
        elif id(obj) not in documented:
            missing.append(name)
    assert not missing, (f"{module.__name__}.__all__ names missing from "
                         f"docs/api.rst: {missing}")


def test_every_public_module_has_a_section():
    _, modules, _ = _documented()
    missing = [m.__name__ for m in _public_modules() if m.__name__ not in modules]
    assert not missing, f"modules without an automodule in docs/api.rst: {missing}"


def test_gallery_has_examples():
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_compiles_with_a_gallery_header(path):
    source = path.read_text()
    tree = compile(source, str(path), "exec", ast.PyCF_ONLY_AST)
    doc = ast.get_docstring(tree, clean=False)
    assert doc, f"{path.name} has no module docstring"
    lines = doc.strip("\n").splitlines()
    # sphinx-gallery: a title, over- and underlined at least as long as it
    assert re.fullmatch(r"=+", lines[0]) and re.fullmatch(r"=+", lines[2]), path.name
    assert len(lines[0]) >= len(lines[1]) and len(lines[2]) >= len(lines[1])
    # the examples say which attack they evaluate with
    assert re.search(r'"(pgd|fast|strong)"|attack=None', doc), path.name
    # examples run without files: no data paths outside the repository
    assert "../shared" not in source
