"""The lit-keras-convert and lit-keras-validate programs."""
from lit_keras_app.cli import convert as convert_cli
from lit_keras_app.cli import validate as validate_cli
from tests.data.test_records import _images


def test_cli(tmp_path, capsys):
  _images(tmp_path / "tree" / "a", 2)
  assert convert_cli.main(["--folder", str(tmp_path / "tree"), "--output_dir",
                       str(tmp_path / "o"), "--num_shards", "1", "--workers", "1"]) == 0
  assert "written 2, rejected 1" in capsys.readouterr().out
  assert validate_cli.main([str(tmp_path / "o" / "*.tfrecord")]) == 0
  assert "2 records, 2 decodable" in capsys.readouterr().out
