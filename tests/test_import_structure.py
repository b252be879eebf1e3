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


# Imports that run from a lower floor up to a higher one, each kept on purpose, with why. A floor is a room's height
# in the import graph, a room being a top-level module or a subpackage (as `farm-studio look` draws the house).
# At most 3; each carries a "# Upward on purpose: ..." comment beside it in the source.
UPWARD_ON_PURPOSE = {
    ("recbole_darec.semantic.__main__", "recbole_darec.config"):
        "python -m recbole_darec.semantic is a command: it builds the Config a run would build, so the profiles "
        "are split as that run splits them",
    ("recbole_darec.semantic.__main__", "recbole_darec.single_run"):
        "the command takes the dataset folder's lock as a run does, so the two never write the same files at once",
}


def _room(module):
    return ".".join(module.split(".")[:2])


def room_graph(edges, leave_out=()):
    """Room -> rooms it imports, read from the module imports except the (importer, imported) pairs left out."""
    rooms = {_room(m): set() for m in edges}
    for module, targets in edges.items():
        for target in targets:
            if (module, target) not in leave_out and _room(target) != _room(module):
                rooms[_room(module)].add(_room(target))
    return rooms


def floors(rooms):
    """Room -> floor: 1 for a room that imports no other, else one above the highest room it imports (no circle)."""
    out = {}

    def floor(room):
        if room not in out:
            out[room] = 1 + max((floor(r) for r in rooms[room]), default=0)
        return out[room]

    for room in rooms:
        floor(room)
    return out


def rooms_tied_upward(edges):
    """Groups of rooms whose imports run in a loop once the imports kept on purpose are left out: each loop holds an
    import that runs up a floor and is not on the list."""
    return circles(room_graph(edges, leave_out=UPWARD_ON_PURPOSE))


def test_no_import_runs_up_a_floor_except_those_kept_on_purpose():
    edges = import_graph()
    assert rooms_tied_upward(edges) == [], "a new import runs up a floor: remove it, or list it with its reason"
    assert len(UPWARD_ON_PURPOSE) <= 3
    height = floors(room_graph(edges, leave_out=UPWARD_ON_PURPOSE))
    for (importer, imported), reason in UPWARD_ON_PURPOSE.items():
        assert imported in edges[importer], f"{importer} no longer imports {imported}: take it off the list"
        assert height[_room(importer)] < height[_room(imported)], f"{importer} -> {imported} no longer runs up"
        assert len(reason) > 40


def _comment_above(path, module):
    """The '#' lines right above the import of ``module`` in ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"from {module} import"))
    above = []
    for line in reversed(lines[:at]):
        if not line.startswith("#"):
            break
        above.append(line)
    return above


def test_each_upward_import_says_why_beside_it():
    mods = _modules()
    for importer, imported in UPWARD_ON_PURPOSE:
        comment = _comment_above(mods[importer][0], imported)
        assert any(line.startswith("# Upward on purpose: ") for line in comment), (importer, imported)


def test_a_made_up_upward_import_would_be_caught():
    edges = {module: set(targets) for module, targets in import_graph().items()}
    edges["recbole_darec.paths"].add("recbole_darec.report.runner")  # the ground reaching up to the top floor
    tied = rooms_tied_upward(edges)
    assert len(tied) == 1 and {"recbole_darec.paths", "recbole_darec.report"} <= set(tied[0])
    # and one beside a kept import, from the same room to the same room, is not hidden by the kept one
    edges = {module: set(targets) for module, targets in import_graph().items()}
    edges["recbole_darec.semantic.build"].add("recbole_darec.config")
    assert rooms_tied_upward(edges) != []
