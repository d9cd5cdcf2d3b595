"""YAML as the user writes it, read with limits: safe tags only, no duplicate keys, bounded nesting and size.

PyYAML composes aliases as shared nodes, so a 'billion laughs' document loads at once and explodes only later, when
the mapping is copied, dumped or hashed; a key given twice keeps the last silently; a deep enough nesting overflows
the parser's recursion. Here the composed node graph is walked first, counting every node as often as aliases
reach it, and refused in one line (naming the file) before anything is built from it.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pipeline.errors import ClipCacheError

MAX_NODES = 100_000  # values counted with every alias expanded (params.yaml of the papers' grids: a few thousand)
MAX_DEPTH = 64  # nesting levels (params.yaml: under 10)
MERGE_TAG = "tag:yaml.org,2002:merge"


def check_node(root: Node, where: str) -> None:
    """Refuse a node graph that is too large, too deep, or holds a mapping with a key given twice."""
    stack: list[tuple[Node, int]] = [(root, 1)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise ClipCacheError(f"{where}: more than {MAX_NODES:,} values once its aliases are expanded (an alias "
                                 "bomb?); write the values out")
        if depth > MAX_DEPTH:
            raise ClipCacheError(f"{where}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, MappingNode):
            keys = [(k.tag, k.value) for k, _ in node.value if isinstance(k, ScalarNode) and k.tag != MERGE_TAG]
            twice = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
            if twice is not None:
                line = node.start_mark.line + 1
                raise ClipCacheError(f"{where}: key {twice[1]!r} is given twice in the mapping at line {line} (only "
                                     "one would count); keep one")
            stack.extend((part, depth + 1) for pair in node.value for part in pair)
        elif isinstance(node, SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)


def load_yaml(text: str, where: str) -> Any:
    """The value of one YAML document, checked by `check_node`; a syntax error is one line naming `where`."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_node(node, where)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ClipCacheError(f"{where} is not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ClipCacheError(f"{where}: nested too deeply to read (more than {MAX_DEPTH} levels)") from None
    finally:
        loader.dispose()
