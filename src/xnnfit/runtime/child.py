"""The observer xnnfit runs inside another runtime's venv: stdlib, numpy and that runtime only.

Run as `python child.py REQUEST.json RESPONSE.json` by targets.py. It never
imports xnnfit (the venv does not have it) and picks the Interpreter's keyword arguments
from its signature, since they differ between runtime versions (checked against
tflite-runtime 2.14.0 and ai-edge-litert 1.0.1, 1.4.0 and 2.3.0).

Requests (JSON): {"op": "details", "model": path, "shapes": {input index: shape}}
-> {"ops": [{"op_name", "index", "inputs", "outputs"}...]}; {"op": "details_many", "models": [path...]} ->
{"results": [{"ops"} or {"error"}...]}; {"op": "time", "configs":
[{"model", "inputs": npz path, "xnnpack", "threads"}...], "runs", "warmup"} ->
{"samples_ms": [[...]...], "rss_delta_bytes": [...]}. Every response carries "runtime"
(distribution and version) and, when the runtime refused, "error" and "stage".
"""

import inspect
import json
import os
import sys
import time


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter as mod

        return mod, "ai-edge-litert"
    except ImportError:
        from tflite_runtime import interpreter as mod

        return mod, "tflite-runtime"


def _version(dist):
    try:
        from importlib import metadata

        return metadata.version(dist)
    except Exception:  # noqa: BLE001 - a version we cannot read is reported as unknown
        return "unknown"


def _rss():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _build(mod, content, shapes, xnnpack, threads, preserve=False):
    params = inspect.signature(mod.Interpreter.__init__).parameters
    kwargs = {"model_content": content, "num_threads": threads}
    if preserve and "experimental_preserve_all_tensors" in params:
        kwargs["experimental_preserve_all_tensors"] = True
    if "experimental_op_resolver_type" in params:
        resolver = mod.OpResolverType.AUTO if xnnpack else mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        kwargs["experimental_op_resolver_type"] = resolver
    it = mod.Interpreter(**kwargs)
    for d in it.get_input_details():
        shape = shapes.get(str(d["index"]))
        if shape is not None and list(d["shape"]) != list(shape):
            it.resize_tensor_input(d["index"], shape, strict=False)
    it.allocate_tensors()
    return it


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def details(mod, request):
    """The runtime's node list after the default delegate was applied."""
    it = _build(
        mod, _read(request["model"]), request.get("shapes", {}), True, 1, bool(request.get("preserve_all_tensors"))
    )
    ops = [
        {
            "op_name": d["op_name"],
            "index": int(d["index"]),
            "inputs": [int(t) for t in d["inputs"]],
            "outputs": [int(t) for t in d["outputs"]],
        }
        for d in it._get_ops_details()
    ]
    return {"ops": ops}


def details_many(mod, request):
    """details() of several models, each answered on its own (one that the runtime refuses gets its error)."""
    results = []
    for model in request["models"]:
        try:
            results.append(details(mod, {"model": model, "shapes": {}}))
        except (ValueError, RuntimeError) as exc:
            results.append({"error": " ".join(str(exc).split())})
    return {"results": results}


def timing(mod, request):
    """Interleaved latency of every config (A B A B ...), as the in-process timer does it."""
    import numpy as np

    runners, rss = [], []
    for c in request["configs"]:
        values = np.load(c["inputs"])
        ordered = [values[f"arr_{i}"] for i in range(len(values.files))]
        before = _rss()
        it = _build(mod, _read(c["model"]), {}, bool(c["xnnpack"]), int(c["threads"]))
        details = it.get_input_details()
        resized = False
        for d, v in zip(details, ordered):
            if list(d["shape"]) != list(v.shape):
                it.resize_tensor_input(d["index"], list(v.shape), strict=False)
                resized = True
        if resized:
            it.allocate_tensors()
        for d, v in zip(it.get_input_details(), ordered):
            it.set_tensor(d["index"], v.astype(d["dtype"]))
        it.invoke()
        rss.append(max(0, _rss() - before))
        runners.append(it.invoke)
    for _ in range(int(request["warmup"])):
        for fn in runners:
            fn()
    samples = [[] for _ in runners]
    for _ in range(int(request["runs"])):
        for i, fn in enumerate(runners):
            start = time.perf_counter()
            fn()
            samples[i].append((time.perf_counter() - start) * 1e3)
    return {"samples_ms": samples, "rss_delta_bytes": rss}


def main(argv):
    """Answer one request file into one response file."""
    with open(argv[1], encoding="utf-8") as f:
        request = json.load(f)
    mod, dist = _interpreter_module()
    response = {"runtime": {"dist": dist, "version": _version(dist)}}
    try:
        response.update({"details": details, "details_many": details_many, "time": timing}[request["op"]](mod, request))
    except (ValueError, RuntimeError) as exc:
        response.update({"error": " ".join(str(exc).split()), "stage": request["op"]})
    tmp = argv[2] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(response, f)
    os.replace(tmp, argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
