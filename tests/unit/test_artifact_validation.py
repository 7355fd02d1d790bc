"""A damaged or crafted model artifact is refused with an ``ArtifactError`` that names the problem, never with
another exception (a KeyError or RuntimeError would stop a consumer that only expects MonitorError)."""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.core.scoring import artifact
from monitor.core.scoring.scorer import model_input
from monitor.errors import ArtifactError, MonitorError
from monitor.registry import model_files
from tests.unit.artifacts import CHANNELS, crafted, small_bundle

BUNDLE = small_bundle()
Meta = dict[str, Any]


def edit(path: str, value: object) -> Callable[[Meta], None]:
    """Set (or, with value DROP, remove) the metadata field at a dotted path."""

    def apply(meta: Meta) -> None:
        *parents, last = path.split(".")
        node = meta
        for key in parents:
            node = node[key]
        if value is DROP:
            del node[last]
        else:
            node[last] = value

    return apply


DROP = object()
N = len(CHANNELS)


def test_an_untouched_crafted_artifact_loads_and_matches_to_bytes(tmp_path: Path) -> None:
    # the crafting helper alone breaks nothing: every refusal below comes from the edit it names
    loaded = artifact.from_bytes(crafted(BUNDLE))
    assert loaded.meta == BUNDLE.meta
    for name, tensor in BUNDLE.module.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[name], tensor)
    path = tmp_path / "m.pt"
    path.write_bytes(crafted(BUNDLE))
    assert model_files.read_meta(path) == BUNDLE.meta == model_files.load(path).meta


@pytest.mark.parametrize(("change", "message"), [
    (edit("channels", DROP), "lacks the fields ['channels']"),
    (edit("calibration.channel_error", DROP), "calibration lacks the fields ['channel_error']"),
    (edit("surprise", 1), "unknown fields ['surprise']"),
    (edit("calibration.surprise", 1), "calibration has unknown fields ['surprise']"),
    (edit("channels", "abc"), "channels must be a list, not str"),
    (edit("channels", ["a", 2, "c"]), "channels[1] must be str, not int"),
    (edit("channels", []), "non-empty list of distinct"),
    (edit("channels", ["a", "a", "c"]), "non-empty list of distinct"),
    (edit("channels", ["a", "", "c"]), "non-empty list of distinct"),
    (edit("window_len", "8"), "window_len must be int, not str"),
    (edit("window_len", 8.0), "window_len must be int, not float"),
    (edit("window_len", True), "window_len must be int, not bool"),
    (edit("window_len", 0), "window_len must be a positive integer"),
    (edit("hidden_size", -4), "hidden_size must be a positive integer"),
    (edit("num_layers", 0), "num_layers must be a positive integer"),
    (edit("dropout", 1.5), "dropout must lie in [0, 1)"),
    (edit("dropout", None), "dropout must be float, not null"),
    (edit("scaler", [1, 2]), "scaler must be an object, not list"),
    (edit("scaler", {"center": [0.0] * N}), "scaler holds ['center']"),
    (edit("scaler.center", [0.0] * (N + 1)), "scaler.center has 4 entries, not one per channel (3 channels)"),
    (edit("scaler.scale", [1.0, 0.0, 1.0]), "scaler.scale must be positive"),
    (edit("scaler.scale", [1.0, 1e-50, 1.0]), "scaler.scale must be positive"),  # 0 in float32
    (edit("scaler.center", [0.0, 1e39, 0.0]), "finite float32"),  # finite in float64 only
    (edit("scaler.center", [0.0, math.nan, 0.0]), "finite float32"),
    (edit("scaler.center", ["0", 0.0, 0.0]), "scaler['center'][0] must be float, not str"),
    (edit("calibration", None), "calibration must be Calibration, not null"),
    (edit("calibration.channel_error", [0.1] * (N - 1)), "channel_error has 2 entries, not one per channel"),
    (edit("calibration.channel_error", [0.1, math.inf, 0.1]), "channel_error holds a non-finite number"),
    (edit("calibration.log_score_mean", math.nan), "log_score_mean holds a non-finite number"),
    (edit("calibration.log_score_mean", "x"), "log_score_mean must be float, not str"),
    (edit("calibration.log_score_std", -1.0), "must not be negative"),
    (edit("calibration.log_score_quantiles", {"q500": math.inf}), "log_score_quantiles holds a non-finite"),
    (edit("calibration.log_score_quantiles", {"q500": "high"}), "log_score_quantiles['q500'] must be float"),
    (edit("calibration.drifting", [1, 0, 1]), "drifting[0] must be bool, not int"),
    (edit("calibration.drifting", [True]), "drifting has 1 entries"),
    (edit("calibration.level_scale", []), "level_scale has 0 entries"),  # level_weight > 0 needs them
    (edit("calibration.level_scale", [0.2, 0.0, 0.2]), "level_scale must be positive"),
    (edit("calibration.level_weight", -1.0), "must not be negative"),
    (edit("calibration.channel_weight", [1.0, -0.1, 1.0]), "channel_weight must lie in [0, 1]"),
    (edit("calibration.channel_weight", [1.0, 1.5, 1.0]), "channel_weight must lie in [0, 1]"),
    (edit("calibration.channel_weight", [0.0, 0.0, 0.0]), "with at least one above 0"),
    (edit("calibration.channel_weight", [1.0, 0.5]), "channel_weight has 2 entries"),
    (edit("calibration.resolution", [0.1, -0.1, 0.1]), "resolution must be finite and not negative"),
    (edit("calibration.resolution", [0.1]), "resolution has 1 entries"),
    (edit("calibration.spike_limit", [0.0, -1.0, 0.0]), "spike_bound must not be negative"),
    (edit("calibration.spike_limit", [0.0, 1.0, 0.0]), "must be given together"),
    (edit("calibration.spike_runs", [1, 1]), "spike_runs has 2 entries"),
    (edit("calibration.calm_scale", [0.1, -0.1, 0.1]), "calm_scale and calm_least must not be negative"),
    (edit("calibration.calm_floor", [0.0, 0.0, 0.0]), "must be given together"),
    (edit("calibration.move_ratio", [1.0, 2.0, 1.0]), "must be given together"),
    (edit("calibration.move_floor", [0.5, -0.5, 0.5]), "move_top and move_ratio must not be negative"),
    (edit("calibration.move_top", [1.0]), "move_top has 1 entries"),
    (edit("calibration.seasonal", {"periods": [86400.0], "harmonics": [1], "coef": [[0.0, 0.0]] * 3,
                                   "phase": [None, {"period": 3600.0, "table": [0.0]}, None]}),
     "calibration.seasonal is damaged"),
    (edit("calibration.muted", [True, True, True]), "muted must leave at least one channel"),
    (edit("calibration.muted", [False, True]), "muted has 2 entries"),
    (edit("calibration.muted", [False, "yes", False]), "muted"),
    (edit("calibration.muted", [False, True, False]), "muted must name event channels only"),
    (edit("calibration.level_weight", 10**400), "level_weight holds a non-finite number"),
    (edit("metrics", {"val_loss": "low"}), "metrics['val_loss'] must be float, not str"),
    (edit("training", []), "training must be an object, not list"),
    (edit("version", 7), "version must be str, not int"),
    (edit("weights_sha256", DROP), "no weights_sha256"),
    (edit("weights_sha256", "abc"), "no weights_sha256"),
    (edit("weights_sha256", None), "no weights_sha256"),
    (edit("weights_sha256", "0" * 64), "weights checksum mismatch"),
])
def test_damaged_metadata_is_refused_with_the_field_named(change: Callable[[Meta], None], message: str) -> None:
    with pytest.raises(ArtifactError) as info:
        artifact.from_bytes(crafted(BUNDLE, meta=change), "m.pt")
    assert message in str(info.value) and str(info.value).startswith("m.pt: ")


def test_a_muted_event_channel_loads_and_is_fed_to_the_model_as_zero() -> None:
    def mute_middle(meta: Meta) -> None:
        meta["calibration"]["channel_weight"] = [1.0, 0.0, 1.0]
        meta["calibration"]["muted"] = [False, True, False]

    loaded = artifact.from_bytes(crafted(BUNDLE, meta=mute_middle))
    assert loaded.meta.calibration.muted == [False, True, False]
    windows = np.ones((2, loaded.meta.window_len, N), dtype=np.float32)
    fed = model_input(windows, loaded.meta.calibration)
    assert (fed[:, :, 1] == 0).all() and (fed[:, :, [0, 2]] == 1).all() and (windows == 1).all()


@pytest.mark.parametrize(("text", "message"), [
    ({"not": "a string"}, "a dict, not a JSON text"),
    ("{nope", "metadata is damaged"),
    ("[]", "metadata is list, not an object"),
    ("null", "metadata is null, not an object"),
    ("[" * 100_000 + "]" * 100_000, "metadata is damaged"),
    ('{"channels": ' + "[" * 900 + "]" * 900 + "}", "metadata is damaged"),
])
def test_metadata_that_is_not_a_json_object_is_refused(text: object, message: str) -> None:
    with pytest.raises(ArtifactError, match="metadata") as info:
        artifact.from_bytes(crafted(BUNDLE, meta=lambda _: text), "m.pt")
    assert message in str(info.value)


def _nan_in(name: str) -> Callable[[dict[str, torch.Tensor]], None]:
    def apply(state: dict[str, torch.Tensor]) -> None:
        state[name].view(-1)[0] = math.nan
    return apply


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: list(s.values()), "state_dict is list, not a dict of tensors"),
    (lambda s: {**s, "to_output.bias": 3}, "weight to_output.bias is int, not a dense tensor"),
    (lambda s: {**s, "to_output.bias": [0.0, 0.0, 0.0]}, "weight to_output.bias is list"),
    (lambda s: {k: v for k, v in s.items() if k != "to_output.bias"}, "missing ['to_output.bias']"),
    (lambda s: {**s, "extra.weight": torch.zeros(2)}, "unexpected ['extra.weight']"),
    (lambda s: {**s, 7: torch.zeros(2)}, "unexpected [7]"),
    (lambda s: {**s, "to_output.bias": torch.zeros(4)}, "to_output.bias is torch.float32 (4,)"),
    (lambda s: {**s, "to_output.bias": torch.zeros(3, dtype=torch.float64)}, "torch.float64 (3,)"),
    (lambda s: {**s, "to_output.bias": torch.zeros(3).to_sparse()}, "not a dense tensor"),
    (_nan_in("encoder.weight_hh_l0"), "encoder.weight_hh_l0 holds NaN or Infinity"),
    (_nan_in("to_output.bias"), "to_output.bias holds NaN or Infinity"),
])
@pytest.mark.filterwarnings("ignore:Validating sparse tensor invariants")
def test_damaged_weights_are_refused(change: Callable[[dict[str, torch.Tensor]], object], message: str) -> None:
    with pytest.raises(ArtifactError) as info:
        artifact.from_bytes(crafted(BUNDLE, state=change), "m.pt")
    assert message in str(info.value)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("hidden_size", 5, "needs torch.float32"),  # the tensors are of hidden size 4
    ("latent_size", 3, "needs torch.float32"),
    ("num_layers", 2, "missing"),
    ("channels", ["a", "b", "c", "d"], "scaler.center has 3 entries"),
    ("hidden_size", 10**12, "weights do not match"),  # nothing of that size is allocated
    ("num_layers", 10**12, "tensors for 1000000000000 layers"),  # nor are that many layers built
])
def test_weights_that_do_not_fit_the_architecture_in_the_metadata_are_refused(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ArtifactError) as info:
        artifact.from_bytes(crafted(BUNDLE, meta=edit(field, value)), "m.pt")
    assert message in str(info.value) or "cannot be built" in str(info.value), str(info.value)


def test_edited_weights_fail_the_checksum() -> None:
    def change(state: dict[str, torch.Tensor]) -> None:
        state["to_output.bias"][0] += 1.0

    good = json.loads(BUNDLE.meta.to_json())  # the metadata with the digest of the weights before the edit
    good["weights_sha256"] = artifact._weights_digest(dict(BUNDLE.module.state_dict()))
    data = crafted(BUNDLE, state=change, meta=lambda _: json.dumps(good))
    with pytest.raises(ArtifactError, match="weights checksum mismatch"):
        artifact.from_bytes(data)


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: [p], "unknown artifact format 'list'"),
    (lambda p: {**p, "format": "other/1"}, "unknown artifact format 'other/1'"),
    (lambda p: {**p, "extra": 1}, "artifact holds"),
    (lambda p: {k: v for k, v in p.items() if k != "state_dict"}, "artifact holds"),
])
def test_a_payload_of_another_shape_is_refused(change: Callable[[dict[str, Any]], object], message: str) -> None:
    with pytest.raises(ArtifactError) as info:
        artifact.from_bytes(crafted(BUNDLE, payload=change))
    assert message in str(info.value)


def test_read_meta_refuses_what_load_refuses(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    path.write_bytes(crafted(BUNDLE, meta=edit("weights_sha256", DROP)))
    with pytest.raises(ArtifactError, match="no weights_sha256"):
        model_files.read_meta(path)
    path.write_bytes(crafted(BUNDLE, meta=edit("window_len", -1)))
    with pytest.raises(ArtifactError, match="window_len must be a positive integer"):
        model_files.read_meta(path)
    with pytest.raises(ArtifactError, match="cannot be read"):
        model_files.read_meta(tmp_path)  # a directory


def test_an_unreadable_file_is_an_artifact_error(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    path.write_bytes(crafted(BUNDLE))
    path.chmod(0)
    try:
        path.open("rb").close()
        readable = True  # root reads anything: nothing to test then
    except PermissionError:
        readable = False
    if not readable:
        with pytest.raises(ArtifactError, match="cannot be read"):
            model_files.load(path)
    path.chmod(0o600)


# --- property tests: mutate the metadata JSON and the artifact's bytes ------------------------------------

FUZZ = settings(max_examples=int(os.environ.get("MONITOR_FUZZ_EXAMPLES", "60")), deadline=timedelta(seconds=5),
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
json_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6)
                | st.sampled_from([0, -1, 1e300, 1e-300, "", "NaN"]))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=10)


def _paths(node: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


META = json.loads(BUNDLE.meta.to_json())
META["weights_sha256"] = artifact._weights_digest(dict(BUNDLE.module.state_dict()))
PATHS = _paths(META)


def _loads_or_artifact_error(data: bytes) -> None:
    try:
        bundle = artifact.from_bytes(data, "fuzz")
    except ArtifactError as exc:
        assert str(exc).startswith(("fuzz", "fuzz:"))
        return
    except MonitorError as exc:  # pragma: no cover - a failure, with its message
        pytest.fail(f"another MonitorError: {exc!r}")
    # what loads is usable: finite scaler, channels as the weights expect
    assert len(bundle.meta.channels) == bundle.module.to_output.out_features
    assert all(math.isfinite(v) for v in bundle.meta.scaler["scale"]) and min(bundle.meta.scaler["scale"]) > 0


@FUZZ
@given(st.sampled_from(PATHS), json_values | json_scalars, st.booleans())
def test_any_metadata_value_anywhere_loads_or_is_an_artifact_error(path: tuple[Any, ...], value: object,
                                                                   delete: bool) -> None:
    meta = json.loads(json.dumps(META))
    node: Any = meta
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    _loads_or_artifact_error(crafted(BUNDLE, meta=lambda _: json.dumps(meta, allow_nan=True)))


ARTIFACT = artifact.to_bytes(BUNDLE)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch on a flipped protocol byte
@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(ARTIFACT) - 1), st.integers(0, 255)), min_size=1, max_size=6),
       st.none() | st.integers(0, len(ARTIFACT)))
def test_flipped_or_truncated_artifact_bytes_load_or_are_an_artifact_error(flips: list[tuple[int, int]],
                                                                        cut: int | None) -> None:
    data = bytearray(ARTIFACT)
    for at, byte in flips:
        data[at] = byte
    _loads_or_artifact_error(bytes(data[:cut]))


def test_the_payload_torch_save_writes_round_trips() -> None:
    # guards the fuzz above: unmutated bytes load
    payload = torch.load(io.BytesIO(ARTIFACT), weights_only=True)
    assert set(payload) == {"format", "meta", "state_dict"}
    assert artifact.from_bytes(ARTIFACT).meta == BUNDLE.meta
