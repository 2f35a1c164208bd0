#!/usr/bin/env bash
# One bounded GPU check of the model stage, for a lent GPU machine (no network there).
#
#   OUT=/some/dir bash bench/gpu_check.sh                # on the GPU machine, from the repo root
#   OUT=/tmp/gc DEVICE=cpu SIZE=tiny bash bench/gpu_check.sh   # the same steps on a CPU, tiny models
#
# Steps, in order (each under `timeout`, a failed or timed-out step does not stop the others):
#   install  carried wheels (.whl/*.whl) and this repo's package into $SITE (/tmp/site), PYTHONPATH=$SITE;
#            if the carried transformers does not import there, it is dropped for the machine's own
#   info     nvidia-smi, torch / CUDA / cuDNN and library versions
#   smoke    bench/gpu_smoke.py: ModelStore loaders on $DEVICE with tiny random weights, one batch each
#   across   bench/generate_stage.py --across: MuseTalk (bf16 on a GPU), segments of $STYLE_FRAMES crops one at a time and
#            $ACROSS at once into one stage filling batches of $ACROSS_BATCH across them: f/s of each and whether
#            every frame has the same bits (what keeps `batch` on split pools equal to `dub`)
#   decode   bench/decode.py: a 10 s 1080p H.264 clip through FrameReader on the CPU and with NVDEC
#            (f/s, CPU ms/frame, whether NVDEC's frames equal the CPU's)
#   train    bench/train_step.py: a training step of stage 1 at $TRAIN_BATCHES frames and stage 2 at
#            $TRAIN_SAMPLES x 16 frames, fp32/bf16 x activation checkpointing off/on: steps/s, peak memory
#   fp32     bench/model_stage.py fp32, batches $FP32_BATCHES
#   bf16     bf16, batches $BF16_BATCHES, plus the pixel difference of fp32(TF32)/bf16/fp16 vs strict fp32
#   style    bench/generate_stage.py: the GenerateStage, bf16 eager, batch $STYLE_BATCH, segments of
#            $STYLE_FRAMES crops: the style generator at DDIM steps $STYLE_STEPS and MuseTalk at the same
#            batch (before cl and compile, whose MuseTalk figures docs/PERFORMANCE.md has, so a short
#            deadline cuts those first)
#   graphs   bf16 --compile --compile-mode reduce-overhead (CUDA graphs), batch $GRAPH_BATCH: whether graphs
#            add to compiling (docs/PERFORMANCE.md has the default mode's figures)
#   cl       bf16 --channels-last
#   compile  bf16 --compile, batches $COMPILE_BATCHES (first call per batch = compile time)
# The order puts first what docs/PERFORMANCE.md has no GPU figure of yet (cl and compile have theirs).
# Every run takes its time from one deadline, TOTAL seconds after the start (default 500): a step gets
# min(its cap, time left), so the whole script ends by TOTAL + ~10 s whatever hangs.
# Output: $OUT/gpu_check.log (everything), $OUT/results.jsonl (one JSON object per figure),
# $OUT/summary.txt (step status + a table of the figures).
# Env: OUT, DEVICE (cuda), SIZE (full), TOTAL (400), ITERS (3), STEPS (all, space-separated names),
#      SITE (/tmp/site), WHEELS (.whl), FP32_BATCHES, BF16_BATCHES, CL_BATCHES, COMPILE_BATCHES,
#      STYLE_STEPS, STYLE_BATCH, STYLE_FRAMES, ACROSS, ACROSS_BATCH, TRAIN_BATCHES, TRAIN_SAMPLES, GRAPH_BATCH.

set -u
export PYTHONUNBUFFERED=1 PIP_ROOT_USER_ACTION=ignore

if [[ -z "${_GPU_CHECK_TEED:-}" ]]; then
    OUT=${OUT:-$PWD/gpu_check_out}
    mkdir -p "$OUT"
    export OUT _GPU_CHECK_TEED=1
    set -o pipefail
    bash "${BASH_SOURCE[0]}" "$@" 2>&1 | tee "$OUT/gpu_check.log"
    exit "${PIPESTATUS[0]}"
fi

DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-full}
TOTAL=${TOTAL:-500}
ITERS=${ITERS:-3}
SITE=${SITE:-/tmp/site}
WHEELS=${WHEELS:-.whl}
STEPS=${STEPS:-install info smoke across decode train bf16 style graphs fp32 cl compile}
ACROSS=${ACROSS:-4}
STYLE_STEPS=${STYLE_STEPS:-1,4}
if [[ $SIZE == tiny ]]; then
    FP32_BATCHES=${FP32_BATCHES:-1,2}
    BF16_BATCHES=${BF16_BATCHES:-1,2,4}
    CL_BATCHES=${CL_BATCHES:-1,2,4}
    COMPILE_BATCHES=${COMPILE_BATCHES:-2}
    DIFF_BATCH=${DIFF_BATCH:-2}
    STYLE_BATCH=${STYLE_BATCH:-4}
    STYLE_FRAMES=${STYLE_FRAMES:-10}
    TRAIN_BATCHES=${TRAIN_BATCHES:-2}
    ACROSS_BATCH=${ACROSS_BATCH:-4}
    GRAPH_BATCH=${GRAPH_BATCH:-2}
    TRAIN_SAMPLES=${TRAIN_SAMPLES:-1}
else
    FP32_BATCHES=${FP32_BATCHES:-8,32}
    BF16_BATCHES=${BF16_BATCHES:-8,16,32,64,128}
    CL_BATCHES=${CL_BATCHES:-8,16,32,64,128}
    COMPILE_BATCHES=${COMPILE_BATCHES:-32,64}
    DIFF_BATCH=${DIFF_BATCH:-8}
    STYLE_BATCH=${STYLE_BATCH:-32}
    STYLE_FRAMES=${STYLE_FRAMES:-250}
    TRAIN_BATCHES=${TRAIN_BATCHES:-32}
    ACROSS_BATCH=${ACROSS_BATCH:-64}
    GRAPH_BATCH=${GRAPH_BATCH:-64}
    TRAIN_SAMPLES=${TRAIN_SAMPLES:-2}
fi

START=$(date +%s)
DEADLINE=$((START + TOTAL))
SUMMARY=$OUT/summary.txt
RESULTS=$OUT/results.jsonl
: >"$SUMMARY"
: >"$RESULTS"
FAILED=0
export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}  # also when STEPS leaves install out (a rerun on a warm machine)
[[ -d /tmp/musedub-link/musedub ]] && export PYTHONPATH=/tmp/musedub-link:$PYTHONPATH

want() { [[ " $STEPS " == *" $1 "* ]]; }
left() { echo $((DEADLINE - $(date +%s))); }
cap() { local l; l=$(left); ((l > 1)) || l=1; echo $(($1 < l ? $1 : l)); }  # min(cap, time left), >= 1
note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME CAP_SECONDS COMMAND...: run under timeout, record OK / FAIL rc / TIMEOUT with its wall time.
step() {
    local name=$1 t rc status t0
    t=$(cap "$2")
    shift 2
    if ((t < 10)); then
        note "SKIP    $name (no time left before the ${TOTAL}s deadline)"
        FAILED=1
        return
    fi
    echo
    echo "=== [$name] $(date -u +%H:%M:%S) timeout ${t}s: $*"
    t0=$(date +%s)
    timeout -k 5 "$t" "$@"
    rc=$?
    case $rc in
        0) status=OK ;;
        124 | 137) status=TIMEOUT ;;
        *) status="FAIL($rc)" ;;
    esac
    ((rc == 0)) || FAILED=1
    note "$(printf '%-8s %-8s %4ds (cap %ds)' "$status" "$name" $(($(date +%s) - t0)) "$t")"
}

# Run python from / with -P, so that the repo root's musedub/ (only its __init__) cannot shadow the installed one.
py_check() { (cd / && timeout -k 5 "$(cap 60)" python3 -P -c "$1"); }

libs_ok() {  # the third-party imports the bench and the smoke need
    py_check '
import diffusers, transformers, huggingface_hub, torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration
from transformers.models.whisper.modeling_whisper import WhisperEncoder
import skimage.data, fsspec, safetensors
for m in (diffusers, transformers, huggingface_hub, torch):
    print("  %-16s %-14s %s" % (m.__name__, m.__version__, m.__file__))
'
}

musedub_ok() {  # this repo as the `musedub` package, as the bench and the smoke import it
    py_check '
import musedub, musedub.models.generator, musedub.models.weights.store, musedub.models.weights.random
import musedub.infra.storage, musedub.pipeline.audio.prompts
print("  musedub.models  ", musedub.models.__file__)
'
}

install() {
    local t0 src ok=1
    t0=$(date +%s)
    echo "=== [install] $(date -u +%H:%M:%S) into $SITE"
    mkdir -p "$SITE"
    if compgen -G "$WHEELS/*.whl" >/dev/null; then
        ls -l "$WHEELS"/*.whl
        timeout -k 5 "$(cap 120)" python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --upgrade --target "$SITE" "$WHEELS"/*.whl || { echo "wheel install failed"; ok=0; }
    else
        echo "no wheels in $WHEELS"
    fi
    if ! libs_ok && compgen -G "$SITE/transformers-*.dist-info" >/dev/null; then
        echo "imports failed with the carried transformers: dropping it for the machine's own"
        rm -rf "$SITE"/transformers "$SITE"/transformers-*.dist-info
        libs_ok || ok=0
    fi
    # This repo as the `musedub` package (pyproject maps pipeline/ jobs/ models/ infra/ to musedub.*),
    # built from a copy so the tree gets no build/ or egg-info, with the machine's own setuptools.
    src=$(mktemp -d /tmp/musedub-src.XXXXXX)
    cp -r pyproject.toml README.md musedub pipeline jobs models infra "$src"/
    timeout -k 5 "$(cap 120)" python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
        --no-cache-dir --upgrade --target "$SITE" "$src" || echo "pip install of the repo failed"
    if ! musedub_ok; then
        # Fallback without setuptools: a musedub/ folder whose subpackages link to the tree.
        echo "musedub does not import: using the linked package /tmp/musedub-link instead"
        mkdir -p /tmp/musedub-link/musedub
        cp musedub/__init__.py /tmp/musedub-link/musedub/
        for d in pipeline jobs models infra; do ln -sfn "$PWD/$d" "/tmp/musedub-link/musedub/$d"; done
        [[ $PYTHONPATH == /tmp/musedub-link:* ]] || export PYTHONPATH=/tmp/musedub-link:$PYTHONPATH
        musedub_ok || ok=0
    fi
    echo "PYTHONPATH=$PYTHONPATH"
    ((ok)) || FAILED=1
    note "$(printf '%-8s %-8s %4ds' "$( ((ok)) && echo OK || echo FAIL)" install $(($(date +%s) - t0)))"
}

info() {
    echo "=== [info] $(date -u +%H:%M:%S)"
    uname -a
    echo "cpus $(nproc)"
    git rev-parse HEAD 2>/dev/null || echo "(no git metadata here)"
    if command -v nvidia-smi >/dev/null; then
        timeout 20 nvidia-smi
        timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit \
            --format=csv
    else
        echo "no nvidia-smi"
    fi
    step torch-info 40 python3 -P -c '
import sys, torch, platform
print("python", sys.version.split()[0], platform.machine())
print("torch", torch.__version__, "cuda", torch.version.cuda, "cuda available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device", p.name, f"cc {p.major}.{p.minor}", f"{p.total_memory / 2**30:.1f} GiB", p.multi_processor_count, "SMs")
    print("cudnn", torch.backends.cudnn.version(), "tf32 cudnn", torch.backends.cudnn.allow_tf32,
          "tf32 matmul", torch.backends.cuda.matmul.allow_tf32)
import importlib.metadata as md
for name in ("diffusers", "transformers", "huggingface-hub", "tokenizers", "safetensors", "accelerate", "regex",
             "numpy", "scikit-image", "fsspec", "setuptools", "triton"):
    try:
        print(f"  {name:16s} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"  {name:16s} MISSING")
'
}

summarize() {
    timeout 30 python3 -P - "$RESULTS" <<'PY' | tee -a "$SUMMARY"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print("\nfigures (results.jsonl):")
for r in rows:
    if r.get("bench") == "generate_stage" and r["mode"] == "across":
        print(f"  stage musetalk {r['dtype'].removeprefix('torch.')} b={r['batch']:3d} one segment at a time"
              f" {r['alone_fps']:9.2f} f/s, {r['segments_at_once']} at once {r['across_fps']:9.2f} f/s"
              f" ({r['mixed_batches']} mixed batches, {r['padding_frames']} padding frames);"
              f" same bits: {r['identical']}")
        continue
    if r.get("bench") == "decode":
        if "error" in r:
            print(f"  decode {r['mode']:4s} no NVDEC: {r['error'][:150]}")
        else:
            same = (f" surface {r['surface']} equal {r['identical_frames']}/{r['frames']} max diff {r['max_abs_diff']}"
                    if "surface" in r else "")
            print(f"  decode {r['mode']:4s} {r['fps']:8.1f} f/s {1000 * r['cpu_s_per_frame']:6.2f} CPU ms/f"
                  f" {r['cores_busy']:5.2f} cores busy{same}")
        continue
    if r.get("bench") == "train_step":
        if r["kind"] == "train_step" and r.get("oom"):
            print(f"  train stage {r['stage']} x{r['samples']:2d} {r['precision']} ckpt={int(r['checkpointing'])} OOM")
        elif r["kind"] == "train_step":
            print(f"  train stage {r['stage']} x{r['samples']:2d} {r['precision']} ckpt={int(r['checkpointing'])}"
                  f" {r['steps_per_s']:7.3f} steps/s {r['frames_per_s']:7.2f} f/s peak {r['peak_mib']:8.0f} MiB")
        elif r["kind"] == "models":
            print(f"  train models {r['weights_gib']:.2f} GiB; UNet weights+grads+AdamW {r['unet_state_gib']:.2f} GiB")
        continue
    if r.get("bench") == "generate_stage":
        steps = f" steps {r['steps']:2d}" if "steps" in r else ""
        peak = f" peak {r['peak_mib']:7.0f} MiB" if "peak_mib" in r else ""
        print(f"  stage {r['generator']:8s}{steps} {r['dtype'].removeprefix('torch.')} {r['mode']} b={r['batch']:3d}"
              f" {r['fps']:9.2f} f/s (best {r['best_fps']:.2f}) first {r['first_segment_s']:.1f}s{peak}")
        continue
    tag = f"{r.get('dtype', ''):4s} cl={int(bool(r.get('channels_last')))} compile={r.get('compile_mode') or 0}"
    if r["kind"] == "measure":
        peak = f" peak {r['peak_mib']:7.0f} MiB" if "peak_mib" in r else ""
        first = f" first {r['first_call_s']:.1f}s" if r.get("compile") else ""
        print(f"  {tag} b={r['batch']:3d} {r['label']:34s} {r['frames_per_s']:9.2f} f/s"
              f" {r['ms_per_frame']:8.2f} ms/f{peak}{first}")
    elif r["kind"] == "diff":
        print(f"  diff {r['dtype']:4s} vs strict fp32 (b={r['batch']}): max {r['max_abs']} mean {r['mean_abs']:.3f}"
              f" >2: {100 * r['frac_over_2']:.2f}% (ref std {r['ref_std']:.1f}, sat {100 * r['ref_frac_saturated']:.1f}%)")
    elif r["kind"] == "whisper":
        print(f"  whisper (fp32, run of {tag.split()[0]}) {r['seconds_per_window'] * 1000:.1f} ms per 30 s window")
    elif r["kind"] == "smoke":
        print(f"  smoke {'OK  ' if r['ok'] else 'FAIL'} {r['check']}: {r['detail'][:150]}")
PY
}

echo "gpu_check: DEVICE=$DEVICE SIZE=$SIZE TOTAL=${TOTAL}s STEPS='$STEPS' OUT=$OUT start $(date -u +%FT%TZ)"
want install && install
want info && info

BENCH=(python3 bench/model_stage.py --size "$SIZE" --device "$DEVICE" --iters "$ITERS" --json "$RESULTS")
want smoke && step smoke 60 python3 bench/gpu_smoke.py --device "$DEVICE" --json "$RESULTS"
want across && step across 90 python3 bench/generate_stage.py --device "$DEVICE" --size "$SIZE" --dtype auto \
    --generator musetalk --batch "$ACROSS_BATCH" --segments 2 --frames "$STYLE_FRAMES" --modes "" --oom-batch 0 \
    --across "$ACROSS" --json "$RESULTS"
want decode && step decode 60 python3 bench/decode.py --device "$DEVICE" --json "$RESULTS"
want train && step train 120 python3 bench/train_step.py --device "$DEVICE" --size "$SIZE" \
    --stage1-batches "$TRAIN_BATCHES" --stage2-samples "$TRAIN_SAMPLES" --steps 2 --json "$RESULTS"
want fp32 && step fp32 60 "${BENCH[@]}" --dtype fp32 --batches "$FP32_BATCHES" --vae-decode
want bf16 && step bf16 90 "${BENCH[@]}" --dtype bf16 --batches "$BF16_BATCHES" --vae-decode \
    --diff-vs-fp32 fp32,bf16,fp16 --diff-batch "$DIFF_BATCH"
want style && step style 90 python3 bench/generate_stage.py --device "$DEVICE" --size "$SIZE" --dtype bf16 \
    --generator musetalk,style --style-steps "$STYLE_STEPS" --batch "$STYLE_BATCH" --segments 3 --frames "$STYLE_FRAMES" \
    --modes eager --oom-batch 0 --json "$RESULTS"
want graphs && step graphs 200 "${BENCH[@]}" --dtype bf16 --batches "$GRAPH_BATCH" --compile \
    --compile-mode reduce-overhead --no-whisper
want cl && step cl 60 "${BENCH[@]}" --dtype bf16 --batches "$CL_BATCHES" --vae-decode --channels-last --no-whisper
want compile && step compile 240 "${BENCH[@]}" --dtype bf16 --batches "$COMPILE_BATCHES" --vae-decode --compile \
    --no-whisper

summarize
note "gpu_check: done in $(($(date +%s) - START))s, $( ((FAILED)) && echo 'some steps FAILED' || echo 'all steps OK')"
exit $FAILED
