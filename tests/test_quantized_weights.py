"""torchvision's quantized (int8) classifiers load their published weights through zoo's download + convert path.

No network: the published file is made here as torchvision's quantization reference made it (torchvision's
quantizable MobileNetV2 with the real float weights of ../shared/assets, fused, calibrated on real photos for
qnnpack, converted, `torch.save(state_dict)`), and served from 127.0.0.1 under the upstream URL's path.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest

import zoo
import zoo.checkpoint

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torch deprecates the quantized dtypes
NAME = "quantized_mobilenet_v2"
UPSTREAM = "/models/quantized/mobilenet_v2_qnnpack_37f702c5.pth"  # the catalog's URL under download.pytorch.org


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A published-format quantized MobileNetV2 state_dict file (qnnpack, per-tensor int8) and its state_dict."""
    from tests.conftest import ASSETS

    if not (ASSETS / "MANIFEST.md").is_file():
        pytest.skip("../shared/assets is not present")
    import torch
    from torchvision.models.quantization import MobileNet_V2_QuantizedWeights, mobilenet_v2

    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = "qnnpack"
    try:
        model = mobilenet_v2(weights=None, quantize=False).eval()  # the quantizable float model
        model.load_state_dict(torch.load(ASSETS / "weights" / "mobilenet_v2-b0353104.pth", weights_only=True))
        model.fuse_model(is_qat=False)
        model.qconfig = torch.ao.quantization.get_default_qconfig("qnnpack")
        torch.ao.quantization.prepare(model, inplace=True)
        transforms = MobileNet_V2_QuantizedWeights.IMAGENET1K_QNNPACK_V1.transforms()
        with torch.inference_mode():
            model(torch.stack([transforms(_photo(n)) for n in ("coffee.png", "rocket.jpg", "astronaut.png")]))
        torch.ao.quantization.convert(model, inplace=True)
    finally:
        torch.backends.quantized.engine = before
    state = model.state_dict()
    path = tmp_path_factory.mktemp("published") / Path(UPSTREAM).name
    torch.save(state, path)
    return path, state


def _photo(name: str) -> Any:
    from PIL import Image

    from tests.conftest import ASSETS

    return Image.open(ASSETS / "images" / name).convert("RGB")


def _reference(state: dict[str, Any]) -> Any:
    """torchvision's own quantized module for the tag (its builder, `quantize=True`), given `state`."""
    from torchvision.models.quantization import mobilenet_v2

    module = mobilenet_v2(weights=None, quantize=True, backend="qnnpack").eval()
    module.load_state_dict(state)
    return module


def _same_quantized(a: Any, b: Any) -> None:
    import torch

    assert a.dtype == b.dtype and a.qscheme() == b.qscheme()
    assert torch.equal(a.int_repr(), b.int_repr())
    if a.qscheme() == torch.per_tensor_affine:
        assert (a.q_scale(), a.q_zero_point()) == (b.q_scale(), b.q_zero_point())
    else:
        assert torch.equal(a.q_per_channel_scales(), b.q_per_channel_scales())
        assert torch.equal(a.q_per_channel_zero_points(), b.q_per_channel_zero_points())
        assert a.q_per_channel_axis() == b.q_per_channel_axis()


def _same_state(got: dict[str, Any], want: dict[str, Any]) -> None:
    import torch

    assert sorted(got) == sorted(want)  # safetensors keeps its keys sorted; a load looks them up by name
    for key, value in want.items():
        pairs = zip(got[key], value) if isinstance(value, tuple) else [(got[key], value)]
        for a, b in pairs:
            if isinstance(b, torch.Tensor) and b.is_quantized:
                _same_quantized(a, b)
            elif isinstance(b, torch.Tensor):
                assert a.dtype == b.dtype and torch.equal(a, b), key
            else:
                assert a == b, key


def test_published_weights_load_through_the_mirror_like_torchvision(
    published: tuple[Path, dict[str, Any]], file_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import torch
    from torchvision.io import read_image
    from torchvision.models.quantization import MobileNet_V2_QuantizedWeights

    from tests.conftest import ASSETS

    path, state = published
    served = file_server.root / UPSTREAM.lstrip("/")
    served.parent.mkdir(parents=True)
    shutil.copy(path, served)
    monkeypatch.setenv("ZOO_MIRRORS", f"https://download.pytorch.org={file_server.url}")
    torch.backends.quantized.engine = "fbgemm"  # the tag's engine must be set by the load
    with monkeypatch.context() as cuda:  # as on a CUDA machine: "auto" still gives the CPU, where int8 kernels are
        _fake_cuda(cuda)
        model = zoo.load(NAME, device="auto")  # bare name: the published IMAGENET1K_QNNPACK_V1
        with pytest.raises(zoo.UnsupportedError, match=r"quantized \(int8\).*CPU only"):
            model.to("cuda")
    assert file_server.paths() == [UPSTREAM]
    assert model.weights == "IMAGENET1K_QNNPACK_V1" and model.device.type == "cpu"
    assert torch.backends.quantized.engine == "qnnpack"
    assert type(model.module.classifier[1]).__module__.startswith("torch.ao.nn.quantized")

    # torchvision's pipeline (its decoding and transforms, its quantized module, the same state_dict): same logits
    reference = _reference(state)
    transforms = MobileNet_V2_QuantizedWeights.IMAGENET1K_QNNPACK_V1.transforms()
    batch = torch.stack([transforms(read_image(str(ASSETS / "images" / n))) for n in ("chelsea.png", "bus.jpg")])
    with torch.inference_mode():
        logits = reference(batch)
        assert torch.equal(model(batch), logits)
    # zoo's predict (its own decoding, preprocessing, softmax) gives torchvision's pipeline's answers
    results = model.predict([ASSETS / "images" / "chelsea.png", ASSETS / "images" / "bus.jpg"], top_k=5)
    scores, indices = logits.softmax(-1).topk(5)
    for result, want_scores, want_indices in zip(results, scores, indices):
        assert list(result.indices) == want_indices.tolist()
        assert result.scores == pytest.approx(want_scores.tolist(), abs=1e-6)
    assert results[0].label == "Egyptian cat"

    # the conversion in the cache is lossless: rebuilt exactly from its int values, scales and zero points
    from zoo.checkpoint.weights import _load_layout, _with_versions

    converted = zoo.fetch(NAME)
    assert converted.suffix == ".safetensors"
    _same_state(_with_versions(_load_layout(converted), converted), state)
    assert _load_layout(converted)["classifier.1._packed_params.dtype"] is torch.qint8

    # saved by zoo (self-describing), it reloads by path, exactly
    back = zoo.load(model.save(tmp_path / "q.safetensors"), device="cpu")
    _same_state(back.module.state_dict(), state)
    assert back.builder_kwargs["backend"] == "qnnpack"

    # a second load uses the cache (no request, no second conversion); a new head is refused, the int8 one kept
    import zoo.checkpoint.weights as weights

    monkeypatch.setattr(weights, "convert_pickle", _no_conversion)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    stamp = converted.stat()
    with pytest.raises(zoo.UnsupportedError, match="quantized .* head cannot be replaced"):
        zoo.load(f"{NAME}:imagenet1k_qnnpack_v1", num_classes=10, device="cpu")  # float head, int8 activations
    assert file_server.paths() == [UPSTREAM]

    # a fresh process reloads the converted file from the cache (offline) and answers the same
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-m", "zoo", "predict", NAME, str(ASSETS / "images" / "chelsea.png"), "--top-k", "3",
         "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    top = json.loads(out.stdout)["results"][0]["top"]
    assert [t["index"] for t in top] == list(results[0].indices[:3])
    assert [t["score"] for t in top] == pytest.approx(list(results[0].scores[:3]), abs=1e-6)
    after = converted.stat()  # the same file, not a new conversion put in its place
    assert (after.st_ino, after.st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)
    assert file_server.paths() == [UPSTREAM]


def _no_conversion(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the cached conversion was made again")


def test_the_safe_reader_reads_the_published_file_exactly(published: tuple[Path, dict[str, Any]]) -> None:
    """zoo's own unpickler (what reads a file torch's `weights_only` refuses) rebuilds every quantized tensor."""
    from zoo import safe_pickle
    from zoo.checkpoint.reader import find_state_dict

    path, state = published
    read = safe_pickle.load(path)
    _same_state(read, state)
    assert find_state_dict(read)[1]._metadata["classifier.1._packed_params"] == {"version": 3}


def test_fbgemm_per_channel_weights_load_on_the_cpu_only(file_server, monkeypatch: pytest.MonkeyPatch) -> None:
    """`quantized_resnet18:IMAGENET1K_FBGEMM_V1`: per-channel int8, fbgemm; a GPU is refused before the build."""
    import torch
    from torchvision.models.quantization import resnet18

    from zoo import safe_pickle

    reference = resnet18(weights=None, quantize=True, backend="fbgemm").eval()  # torchvision's own int8 module
    state = reference.state_dict()
    assert torch.per_channel_affine in {v.qscheme() for v in state.values() if getattr(v, "is_quantized", False)}
    served = file_server.root / "models" / "quantized" / "resnet18_fbgemm_16fa66dd.pth"
    served.parent.mkdir(parents=True)
    torch.save(state, served)
    _same_state(safe_pickle.load(served), state)  # the safe reader's per-channel scales and zero points
    monkeypatch.setenv("ZOO_MIRRORS", f"https://download.pytorch.org={file_server.url}")
    torch.backends.quantized.engine = "qnnpack"
    with monkeypatch.context() as patched:
        _fake_cuda(patched)
        patched.setattr(zoo.checkpoint, "build_module", _no_build)
        with pytest.raises(zoo.UnsupportedError, match=r"quantized \(int8\).*CPU only.*device='cpu'"):
            zoo.load("quantized_resnet18:IMAGENET1K_FBGEMM_V1", device="cuda")
    model = zoo.load("quantized_resnet18:IMAGENET1K_FBGEMM_V1", device="cpu")
    assert torch.backends.quantized.engine == "fbgemm" and model.builder_kwargs["backend"] == "fbgemm"
    _same_state(model.module.state_dict(), state)
    x = torch.rand(2, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        logits = reference(x)
        assert torch.equal(model(x), logits) and logits.std() > 0


def _no_build(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the module was built before the device was refused")


def test_zoo_convert_writes_the_quantized_layout(published: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """`zoo convert --dtype float16` casts the float tensors but keeps int values and float64 scales exact."""
    import torch

    from zoo.checkpoint import convert
    from zoo.checkpoint.weights import _load_layout

    path, state = published
    done = convert(path, tmp_path / "q.safetensors", dtype="float16")
    read = _load_layout(done.path)
    assert read["features.0.0.bias"].dtype == torch.float16
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_quantized:
            _same_quantized(read[key], value)
    _same_quantized(
        read["classifier.1._packed_params._packed_params"][0], state["classifier.1._packed_params._packed_params"][0]
    )


def test_round_trip_of_every_quantized_layout() -> None:
    """Per-tensor and per-channel int8 / uint8 / int32, a (weight, None) tuple and a dtype, exactly."""
    import torch

    from zoo.checkpoint.quantized import HEADER_KEY, decode, encode

    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, 3, 2, generator=g)
    scales = torch.rand(3, generator=g, dtype=torch.float64) / 10 + 1e-3
    state: dict[str, Any] = OrderedDict(
        [
            ("conv.weight", torch.quantize_per_channel(w, scales, torch.tensor([0, 1, -2]), 1, torch.qint8)),
            ("conv.bias", torch.randn(6, generator=g)),
            ("quant.scale", torch.tensor([0.0123])),
            ("act", torch.quantize_per_tensor(w.abs(), 0.0371, 17, torch.quint8)),
            ("acc", torch.quantize_per_tensor(w, 1e-4, 0, torch.qint32)),
            ("fc._packed_params.dtype", torch.qint8),
            ("fc._packed_params._packed_params", (torch.quantize_per_tensor(w[0], 0.02, 3, torch.qint8), None)),
        ]
    )
    tensors, header = encode(state)
    assert all(isinstance(t, torch.Tensor) and not t.is_quantized for t in tensors.values())
    assert tensors["conv.weight"].dtype == torch.int8 and tensors["act"].dtype == torch.uint8
    assert torch.equal(tensors["conv.weight.q_scale"], scales)
    layout = json.loads(header[HEADER_KEY])
    assert layout["tensors"]["conv.weight"] == {"axis": 1, "dtype": "qint8", "qscheme": "per_channel_affine"}
    assert layout["tuples"] == {"fc._packed_params._packed_params": [True, False]}
    _same_state(decode(tensors, header, source="t"), state)
    plain = OrderedDict(a=torch.ones(2))
    assert encode(plain) == (plain, {})  # other state_dicts keep their bytes


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t, h: h["tensors"]["w"].update(qscheme="per_channel_affine_float_qparams"), "quantized entry 'w'"),
        (lambda t, h: h["tensors"]["w"].update(dtype="float64"), "quantized entry 'w'"),
        (lambda t, h: t.update({"w.q_scale": -t["w.q_scale"]}), "scales"),
        (lambda t, h: t.update({"w.q_zero_point": t["w.q_zero_point"] + 1000}), "zero points"),
        (lambda t, h: t.pop("w.q_zero_point"), "missing"),
        (lambda t, h: h["dtypes"].update(d="os.system"), "dtype entry 'd'"),
        (lambda t, h: h.update(version=2), "not zoo's quantized layout"),
    ],
)
def test_a_damaged_quantized_header_is_an_input_error(change: Any, match: str) -> None:
    import torch

    from zoo.checkpoint.quantized import HEADER_KEY, decode, encode

    tensors, header = encode({"w": torch.quantize_per_tensor(torch.ones(3), 0.1, 5, torch.quint8), "d": torch.qint8})
    layout = json.loads(header[HEADER_KEY])
    change(tensors, layout)
    with pytest.raises(zoo.InputError, match=match):
        decode(tensors, {HEADER_KEY: json.dumps(layout)}, source="w.safetensors")


def test_a_per_channel_entry_needs_a_channel_axis() -> None:
    import torch

    from zoo.checkpoint.quantized import HEADER_KEY, decode

    tensors = {"w": torch.tensor(3, dtype=torch.int8), "w.q_scale": torch.ones(1, dtype=torch.float64),
               "w.q_zero_point": torch.zeros(1, dtype=torch.int64)}  # fmt: skip
    layout = {"version": 1, "tensors": {"w": {"axis": 0, "dtype": "qint8", "qscheme": "per_channel_affine"}},
              "tuples": {}, "dtypes": {}}  # fmt: skip
    with pytest.raises(zoo.InputError, match="axis"):  # a 0-d tensor has no axis 0
        decode(tensors, {HEADER_KEY: json.dumps(layout)}, source="w.safetensors")


class _System:
    """Pickles as a call of `os.system`: what a malicious file would run."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


class _EvilQTensor:
    """Pickles as torch's `_rebuild_qtensor` of a real int8 storage whose quantizer carries `quantizer`."""

    def __init__(self, tensor: Any, quantizer: tuple[Any, ...]) -> None:
        self.tensor, self.quantizer = tensor, quantizer

    def __reduce__(self) -> tuple[Any, ...]:
        import torch

        t = self.tensor
        args = (t.storage(), t.storage_offset(), tuple(t.size()), t.stride(), self.quantizer, False, OrderedDict())
        return (torch._utils._rebuild_qtensor, args)


@pytest.mark.parametrize("where", ["scale", "scheme", "entry"])
def test_a_malicious_quantized_pickle_runs_nothing(
    where: str, tmp_path: Path, file_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from zoo import safe_pickle
    from zoo.checkpoint import read_state_dict

    marker = tmp_path / "pwned"
    system = _System(f"touch {marker}")
    q = torch.quantize_per_tensor(torch.ones(4), 0.5, 0, torch.qint8)
    quantizer = {"scale": (torch.per_tensor_affine, system, 0), "scheme": (system, 0.5, 0)}.get(where)
    value = _EvilQTensor(q, quantizer) if quantizer else q
    state = OrderedDict(w=value, **({"x": system} if where == "entry" else {}))
    served = file_server.root / UPSTREAM.lstrip("/")
    served.parent.mkdir(parents=True)
    torch.save(state, served)
    with zipfile.ZipFile(served) as zf:  # the file really calls os.system when unpickled unsafely
        data = zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))
    assert b"system" in data and b"_rebuild_qtensor" in data

    with pytest.raises(zoo.UnsupportedError):
        safe_pickle.load(served) if where != "entry" else read_state_dict(served)
    monkeypatch.setenv("ZOO_MIRRORS", f"https://download.pytorch.org={file_server.url}")
    with pytest.raises(zoo.ZooError):
        zoo.load(NAME, device="cpu")
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(served, weights_only=True)  # torch's own safe reader refuses it too


def _fake_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_a_gpu_request_for_a_quantized_model_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch)  # as on a CUDA machine (the device check also runs on a real one)
    with pytest.raises(zoo.UnsupportedError, match=r"quantized \(int8\).*CPU only.*device='cpu'") as err:
        zoo.load("quantized_shufflenet_v2_x0_5:none", quantize=True, device="cuda")
    assert "\n" not in str(err.value)


def test_fuzz_quantized_layouts_give_a_state_dict_or_an_input_error() -> None:
    """Random `zoo.quantized` header entries and tensors: `decode` rebuilds or raises a one-line `ZooError`."""
    import torch
    from hypothesis import given
    from hypothesis import strategies as st

    from tests.fuzz_settings import expect_zoo_errors, fuzz
    from zoo.checkpoint.quantized import HEADER_KEY, decode

    names = st.sampled_from(["w", "w.q_scale", "w.q_zero_point", "t", "t.0", "t.1", "d", "x"])
    dtypes = st.sampled_from(["qint8", "quint8", "qint32", "qint8", "float64", "float32", "os.system", 3, None])
    entry = st.fixed_dictionaries(
        {"dtype": dtypes, "qscheme": st.sampled_from(["per_tensor_affine", "per_channel_affine", "x"])},
        optional={"axis": st.integers(-1, 3) | st.just("0")},
    )

    def tensors_of(*kinds: Any) -> Any:  # mostly the dtype the layout expects, so the deep checks are reached
        shapes = st.lists(st.integers(0, 3), max_size=3)
        values = st.integers(-300, 300) | st.floats(allow_nan=True, allow_infinity=True)
        return st.tuples(st.sampled_from(kinds), shapes, values).map(
            lambda a: torch.full(a[1], float(a[2]), dtype=torch.float64).to(a[0])
        )

    ints = (torch.int8, torch.uint8, torch.int32, torch.float32)
    tensors = st.fixed_dictionaries(
        {},
        optional={
            "w": tensors_of(*ints),
            "w.q_scale": tensors_of(torch.float64, torch.float64, torch.float32),
            "w.q_zero_point": tensors_of(torch.int64, torch.int64, torch.int8),
            "t.0": tensors_of(*ints),
            "t.1": tensors_of(torch.float32),
            "x": tensors_of(torch.float32),
        },
    )
    entries = st.dictionaries(st.just("w"), entry, max_size=1) | st.dictionaries(names, entry | st.none(), max_size=3)
    layout = st.fixed_dictionaries(
        {
            "version": st.sampled_from([1, 1, 1, 2, "1"]),
            "tensors": entries,
            "tuples": st.dictionaries(names, st.lists(st.booleans(), max_size=3) | st.integers(), max_size=2),
            "dtypes": st.dictionaries(names, dtypes, max_size=2),
        }
    )

    @fuzz(100)
    @given(layout=layout, tensors=tensors)
    def check(layout: dict[str, Any], tensors: dict[str, Any]) -> None:
        expect_zoo_errors(lambda: decode(tensors, {HEADER_KEY: json.dumps(layout)}, source="f.safetensors"))

    check()
