"""recbole_darec.yaml_files: the one reader of user YAML files; every caller keeps its wording and error class."""
import pytest
import yaml

from recbole_darec.cli_errors import UserError, run_cli, user_error_types
from recbole_darec.config_checks import read_config_file
from recbole_darec.report.errors import CompareError
from recbole_darec.report.variants import load_variants
from recbole_darec.tune.space import SearchSpaceError, load_space
from recbole_darec.yaml_files import YamlFileError, read_yaml_file

BROKEN = "a: [1, 2\nb: 3\n"  # PyYAML places the problem on line 2


def test_content_comes_back_as_the_loader_reads_it(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("a: 1\nb: [x, y]\n", encoding="utf-8")
    assert read_yaml_file(path, yaml.SafeLoader, "x file") == {"a": 1, "b": ["x", "y"]}
    path.write_text("", encoding="utf-8")
    assert read_yaml_file(path, yaml.SafeLoader, "x file") is None


@pytest.mark.parametrize("read, missing, broken, own_error", [
    (read_config_file, "config file {p} does not exist (check --config_files)",
     "config file {p} line 2: not valid YAML (expected ',' or ']', but got ':'); fix the file", UserError),
    (load_variants, "variants file not found: {p}",
     "{p} line 2: not valid YAML (expected ',' or ']', but got ':')", CompareError),
    (load_space, "search space file {p} does not exist",
     "{p} line 2: not valid YAML (expected ',' or ']', but got ':')", SearchSpaceError),
], ids=["config", "variants", "space"])
def test_each_caller_keeps_its_message_and_raises_one_error_type(tmp_path, read, missing, broken, own_error):
    path = tmp_path / "f.yaml"
    with pytest.raises(YamlFileError) as err:
        read(path)
    assert str(err.value) == missing.format(p=path) and isinstance(err.value, own_error)
    path.write_text(BROKEN, encoding="utf-8")
    with pytest.raises(YamlFileError) as err:
        read(path)
    assert str(err.value) == broken.format(p=path) and isinstance(err.value, own_error)


def test_the_cli_handler_turns_it_into_one_line(tmp_path, capsys):
    assert issubclass(YamlFileError, user_error_types())

    def main(argv):
        read_yaml_file(tmp_path / "gone.yaml", yaml.SafeLoader, "some file")

    assert run_cli(main, "prog", []) == 2
    assert capsys.readouterr().err == f"prog: error: some file {tmp_path / 'gone.yaml'} does not exist\n"
