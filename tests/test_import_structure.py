"""The package's imports have no circle: read from the source (every import, at module level or inside a function),
module by module. A package's ``__init__`` is its face: ``from recbole_darec.semantic import X`` counts as an import
of the submodule that defines ``X``, so re-exports do not make circles of their own."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "recbole_darec"


def _modules():
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        face = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if face else parts)] = (path, face)
    return mods


def _absolute(node, module, is_face):
    package = module if is_face else module.rpartition(".")[0]
    if not node.level:
        return node.module or ""
    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _faces(mods):
    """face -> {exported name: module that defines it} from the face's own ``from ... import`` lines."""
    out = {}
    for name, (path, face) in mods.items():
        if face:
            exports = {}
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.ImportFrom):
                    source = _absolute(node, name, True)
                    for alias in node.names:
                        exports[alias.asname or alias.name] = source
            out[name] = exports
    return out


def _resolve(target, mods, faces, seen=()):
    """The non-face module ``target`` (a dotted name, maybe ``face.name``) stands for, or None."""
    if target in mods and not mods[target][1]:
        return target
    face, _, name = target.rpartition(".")
    if target in mods:  # a bare face import: its re-exports are followed where they are named
        return None
    if face in faces and name in faces[face] and target not in seen:
        return _resolve(faces[face][name], mods, faces, seen + (target,))
    if face in mods and not mods[face][1]:
        return face  # module.attribute
    return None


def import_graph():
    mods = _modules()
    faces = _faces(mods)
    edges = {m: set() for m, (_, face) in mods.items() if not face}
    for module in edges:
        path, _ = mods[module]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, module, False)
                targets = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("recbole_darec"):
                    resolved = _resolve(target, mods, faces)
                    if resolved and resolved != module:
                        edges[module].add(resolved)
    return edges


def circles(edges):
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]; counter[0] += 1; stack.append(start); on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]; counter[0] += 1
                    stack.append(child); on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop(); on_stack.discard(member); group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_the_package_has_no_import_circle():
    edges = import_graph()
    assert len(edges) > 60 and sum(map(len, edges.values())) > 100  # the graph was really read
    assert circles(edges) == []


def test_a_circle_would_be_found():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_ground_imports_nothing_of_the_plugin():
    edges = import_graph()
    for ground in ("recbole_darec.cli_errors", "recbole_darec.paths", "recbole_darec.atomic", "recbole_darec.run_id"):
        assert edges[ground] == set(), (ground, edges[ground])
