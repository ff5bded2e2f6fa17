"""Command lines take settings as NAME=VALUE (training) or NAME:=VALUE (the demo's node parameters), typed
one way: as YAML, like `ros2 run -p`. A malformed setting is refused with the words the user typed."""
from __future__ import annotations

import argparse

import pytest

from ckd_ros.assignment import parse_assignment

SYNTHETIC = {"data": {"kind": "synthetic"}}


@pytest.mark.parametrize("text, expected", [
    ("epochs=3", ("epochs", 3)),
    ("optim.lr_head=0.5", ("optim.lr_head", 0.5)),
    ("amp=true", ("amp", True)),
    ("data.sizes=[128, 256]", ("data.sizes", [128, 256])),
    ("output_dir=runs/a=b", ("output_dir", "runs/a=b")),  # split at the first separator only
    (" name = text ", ("name", "text")),
])
def test_values_are_typed_as_yaml(text, expected):
    assert parse_assignment(text, "=") == expected


def test_the_ros2_separator_keeps_a_plain_equals_sign_in_the_value():
    assert parse_assignment("topic:=/a=b", ":=") == ("topic", "/a=b")
    assert parse_assignment("qos.depth:=12", ":=") == ("qos.depth", 12)


@pytest.mark.parametrize("text, separator", [("epochs", "="), ("=3", "="), ("qos.depth=12", ":="),
                                             ("box:=[1, 2", ":=")])
def test_malformed_settings_are_refused_naming_what_was_typed(text, separator):
    with pytest.raises(ValueError, match=repr(text).replace("[", r"\[")):
        parse_assignment(text, separator)


def test_training_overrides_and_demo_parameters_share_the_rule():
    from ckd_ros.demo.__main__ import _node_parameter
    from ckd_ros.training.config import config_from_dict

    assert config_from_dict(SYNTHETIC, ["optim.epochs=2"]).optim.epochs == 2
    with pytest.raises(ValueError, match="NAME=VALUE"):
        config_from_dict(SYNTHETIC, ["optim.epochs"])
    with pytest.raises(argparse.ArgumentTypeError, match="NAME:=VALUE"):
        _node_parameter("qos.depth=12")


def test_a_training_setting_takes_its_fields_type_or_is_refused_naming_the_key():
    from ckd_ros.training.config import config_from_dict

    # YAML 1.1 reads 5e-5 (the paper's head learning rate, as papers write it) as text
    cfg = config_from_dict(SYNTHETIC, ["optim.lr_head=5e-5", "optim.weight_decay=0", "output_dir=2024"])
    assert cfg.optim.lr_head == 5e-5 and isinstance(cfg.optim.weight_decay, float) and cfg.output_dir == "2024"
    for bad, key in (("optim.epochs=two", "config.optim.epochs"), ("optim.epochs=2.5", "config.optim.epochs"),
                     ("amp=maybe", "config.amp"), ("optim.lr_head=fast", "config.optim.lr_head"),
                     ("loss.style=true", "config.loss.style")):
        with pytest.raises(ValueError, match=key):
            config_from_dict(SYNTHETIC, [bad])
