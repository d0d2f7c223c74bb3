"""Descriptions of params fields, read from the docstrings written under them, only when asked for.

A params model documents each field with a string literal on the line under it. pydantic's ``use_attribute_docstrings`` reads them from the source of
every model as its class is created, which cost a cold ``jtag data/list`` about a third of its
start-up; only the help, the generated documents and the OpenAPI document need them. So
``document_params()`` fills them in for those callers: it gives each field of every params model
loaded so far the docstring written under it in the class that declares it (exactly what
``use_attribute_docstrings`` gave), and rebuilds the models so their JSON schemas carry them.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import threading

from pydantic import BaseModel

from dbhandles.commands.base import Params

__all__ = ["attribute_docs", "document_params"]

_lock = threading.Lock()
_documented: set[type[BaseModel]] = set()


def attribute_docs(cls: type) -> dict[str, str]:
    """The docstrings under the annotated attributes of ``cls``'s own body, by attribute name.

    Returns ``{}`` when the source cannot be read (a class made at run time, an interactive session).
    """
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    text = textwrap.dedent(source)
    if text.startswith((" ", "\t")):  # a class nested in a block, with a string less indented
        text = "def _nested():\n" + text
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    node = tree.body[0] if tree.body else None
    if isinstance(node, ast.FunctionDef) and node.body:
        node = node.body[0]
    if not isinstance(node, ast.ClassDef):
        return {}
    docs: dict[str, str] = {}
    for previous, stmt in zip(node.body, node.body[1:], strict=False):
        if (
            isinstance(previous, ast.AnnAssign)
            and isinstance(previous.target, ast.Name)
            and isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str)
        ):
            docs[previous.target.id] = inspect.cleandoc(stmt.value.value)
    return docs


def _subclasses(cls: type[Params]) -> list[type[Params]]:
    found: list[type[Params]] = []
    pending = [cls]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                pending.append(sub)
    return found


def _describe(model: type[Params], docs: dict[type, dict[str, str]]) -> None:
    """Give each field of ``model`` that has no description the docstring of the class declaring it."""
    for name, info in model.model_fields.items():
        if info.description is not None:
            continue
        for klass in model.__mro__:
            if name in inspect.get_annotations(klass):
                if klass not in docs:
                    docs[klass] = attribute_docs(klass)
                info.description = docs[klass].get(name)
                break


def document_params() -> None:
    """Fill in the field descriptions of every params model loaded so far (once per model).

    Safe to call often and from several threads; the first call for a model reads its source and
    rebuilds it (its validator and JSON schema), later calls cost a walk over the subclasses.
    """
    with _lock:
        everything: list[type[Params]] = [Params, *_subclasses(Params)]
        models = [m for m in everything if m not in _documented]
        if not models:
            return
        docs: dict[type, dict[str, str]] = {}
        for model in models:
            _describe(model, docs)
        # Twice: a model whose field is another params model takes that model's rebuilt schema.
        for _ in range(2):
            for model in models:
                model.model_rebuild(force=True)
        _documented.update(models)
