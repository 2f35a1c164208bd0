"""The pipeline's own load path on a device, with tiny random weights in the published layout.

    python bench/gpu_smoke.py --device cuda        # OK/FAIL per check, exit 1 if any failed
    python bench/gpu_smoke.py --device cpu

Writes tiny random weights (`write_random_weights`, `write_random_face_parser`) into a temp
folder, then per check: `ModelStore.load_generator` in fp32/bf16/fp16 on the device and one
batch as `GenerateStage` feeds it (uint8 crops on the device, float32 prompts from the CPU);
`load_audio_encoder` and one window; `AudioPrompter` prompts into the bf16 generator (the
pipeline's audio ▸ generator path); `load_face_parser` and one parse. Not a benchmark.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import traceback
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from musedub.models.weights.random import write_random_face_parser, write_random_weights
from musedub.models.weights.store import DTYPES, ModelStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--json", help="append one JSON object per check to this file")
    args = parser.parse_args()
    results: list[dict[str, object]] = []

    def check(name: str, fn: Callable[[], str]) -> None:
        start = time.perf_counter()
        try:
            detail, ok = fn(), True
        except Exception as exc:  # report and go on: every check runs
            detail, ok = f"{type(exc).__name__}: {exc}", False
            traceback.print_exc()
        seconds = time.perf_counter() - start
        print(f"{'OK  ' if ok else 'FAIL'} {name} ({seconds:.1f} s): {detail}", flush=True)
        results.append({"kind": "smoke", "check": name, "ok": ok, "seconds": seconds, "detail": detail})

    with tempfile.TemporaryDirectory(prefix="musedub-smoke-") as tmp:
        root = Path(tmp) / "weights"
        state: dict[str, object] = {}

        def write() -> str:
            layout = write_random_weights(root, tiny=True)
            write_random_face_parser(layout)
            return f"tiny random weights in {root}"

        check("write_random_weights(tiny)", write)
        store = ModelStore(str(root))
        rng = np.random.default_rng(0)
        crops = rng.integers(0, 256, (args.batch, 256, 256, 3), dtype=np.uint8)

        def generate(dtype_name: str) -> str:
            generator = store.load_generator("v1.5", args.device, DTYPES[dtype_name])
            param = next(generator.parameters())
            expected = torch.device(args.device)
            if param.device.type != expected.type or param.dtype != DTYPES[dtype_name]:
                raise AssertionError(f"weights on {param.device} {param.dtype}, wanted {args.device} {dtype_name}")
            prompts = rng.standard_normal((args.batch, 50, generator.unet.audio_dim)).astype(np.float32)
            batch = torch.from_numpy(crops).to(param.device)  # as GenerateStage does
            out = generator(batch, batch, torch.from_numpy(prompts)).cpu().numpy()
            if out.shape != crops.shape or out.dtype != np.uint8:
                raise AssertionError(f"output {out.shape} {out.dtype}, wanted {crops.shape} uint8")
            if dtype_name == "bf16":
                state["generator"] = generator
            return f"{param.device} {param.dtype}: out {out.shape} {out.dtype}, mean {out.mean():.1f}"

        for dtype_name in ("bf16", "fp16", "fp32"):
            check(f"load_generator(v1.5, {args.device}, {dtype_name}) + one batch", lambda d=dtype_name: generate(d))

        def audio() -> str:
            encoder = store.load_audio_encoder(args.device)
            state["audio"] = encoder
            samples = (rng.standard_normal(3 * 16000) * 0.1).astype(np.float32)
            states = encoder.encode_windows([samples])
            if not torch.isfinite(states).all():
                raise AssertionError("non-finite hidden states")
            return f"{next(encoder.parameters()).device}: states {tuple(states.shape)} {states.dtype}"

        check(f"load_audio_encoder({args.device}) + one window", audio)

        def prompts_into_generator() -> str:
            from musedub.pipeline.audio.prompts import AudioPrompter  # pipeline code: imported here, optional

            if "audio" not in state or "generator" not in state:
                raise RuntimeError("needs the audio encoder and bf16 generator checks to pass first")
            prompts = AudioPrompter(state["audio"]).for_waveform(  # type: ignore[arg-type]
                (rng.standard_normal(2 * 16000) * 0.1).astype(np.float32), Fraction(25), 0, args.batch
            )
            generator = state["generator"]
            device = next(generator.parameters()).device  # type: ignore[attr-defined]
            batch = torch.from_numpy(crops).to(device)
            out = generator(batch, batch, torch.from_numpy(prompts)).cpu().numpy()  # type: ignore[operator]
            return f"prompts {prompts.shape} {prompts.dtype} -> out {out.shape} {out.dtype}"

        check("AudioPrompter prompts -> bf16 generator", prompts_into_generator)

        def face_parser() -> str:
            parser_model = store.load_face_parser(args.device)
            labels = parser_model.parse(rng.integers(0, 256, (1, 512, 512, 3), dtype=np.uint8))
            return f"{parser_model.device}: labels {labels.shape} {labels.dtype}"

        check(f"load_face_parser({args.device}) + one parse", face_parser)

    failed = [r["check"] for r in results if not r["ok"]]
    print(f"smoke: {len(results) - len(failed)} passed, {len(failed)} failed" + (f": {failed}" if failed else ""))
    if args.json:
        with open(args.json, "a") as out:
            for row in results:
                out.write(json.dumps({**row, "device": args.device}) + "\n")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
