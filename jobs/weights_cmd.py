"""`musedub weights ...`: fetch the release, write random weights, check a weights location."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from musedub.models.style_predictor import StylePredictor
from musedub.models.style_renderer import StyleRenderer
from musedub.models.weights.compose import compose_weights
from musedub.models.weights.download import download_release
from musedub.models.weights.layout import UnetVersion
from musedub.models.weights.random import write_random_face_parser, write_random_training_models, write_random_weights
from musedub.models.weights.store import ModelStore

app = typer.Typer(no_args_is_help=True, help="Model weights in the published MuseTalk layout.")
log = logging.getLogger(__name__)


@app.command()
def download(
    directory: Annotated[Path, typer.Argument(help="Folder to fill with the release layout.")],
    with_v10: Annotated[bool, typer.Option("--with-v10", help="Also fetch the v1.0 UNet.")] = False,
) -> None:
    """Fetch MuseTalk v1.5, sd-vae-ft-mse, whisper-tiny and the face models (needs network)."""
    manual = download_release(directory, with_v10=with_v10)
    for item in manual:
        typer.echo(f"fetch by hand into {directory}: {item}")
    typer.echo(f"weights ready in {directory}")


@app.command("init-random")
def init_random(
    directory: Annotated[Path, typer.Argument(help="Folder to write.")],
    tiny: Annotated[
        bool, typer.Option("--tiny", help="Test-sized models (seconds on a CPU) instead of full size.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    with_v10: Annotated[bool, typer.Option("--with-v10", help="Also write the v1.0 UNet file.")] = False,
    face_parser: Annotated[
        bool, typer.Option("--face-parser", help="Also write a random full-size BiSeNet (blend mask from parsing).")
    ] = False,
    training: Annotated[
        bool, typer.Option("--training", help="Also write a random VGG19, SyncNet and FID Inception (training, eval).")
    ] = False,
) -> None:
    """Write RANDOM weights in the published layout, for running the pipeline offline."""
    layout = write_random_weights(directory, tiny=tiny, seed=seed, with_v10=with_v10)
    if face_parser:
        write_random_face_parser(layout, seed=seed)
    if training:
        write_random_training_models(layout, tiny=tiny, seed=seed)
    typer.echo(f"random {'tiny' if tiny else 'full-size'} weights written to {directory} (they do not lip-sync)")


@app.command()
def check(
    weights: Annotated[str, typer.Argument(help="Weights folder or URI.")],
    version: Annotated[str, typer.Option(help="UNet version: v1.5 or v1.0.")] = "v1.5",
) -> None:
    """Load every model of a weights location strictly and print their sizes."""
    store = ModelStore(weights)
    unet_version: UnetVersion = "v1.0" if version == "v1.0" else "v1.5"
    generator = store.load_generator(unet_version, device="cpu")
    audio = store.load_audio_encoder(device="cpu")
    models = [("unet", generator.unet), ("vae", generator.vae), ("whisper encoder", audio)]
    if any(store.layout.style.glob("*.json")):  # the style generator's are ours and optional: checked when present
        models += [
            ("style predictor", StylePredictor.from_pretrained(store.layout.style)),
            ("style renderer", StyleRenderer.from_pretrained(store.layout.style)),
        ]
    for name, module in models:
        count = sum(p.numel() for p in module.parameters())
        typer.echo(f"{name}: {count / 1e6:.2f} M parameters")
    typer.echo(f"{weights}: all models load{' (RANDOM weights)' if store.layout.is_random else ''}")


@app.command()
def compose(
    base: Annotated[str, typer.Argument(help="Weights folder or URI to start from (VAE, whisper, face models).")],
    checkpoint: Annotated[
        str, typer.Argument(help="A training checkpoint folder or URI (musetalkV15/, syncnet/; or style/).")
    ],
    directory: Annotated[Path, typer.Argument(help="New local weights folder to write.")],
) -> None:
    """A weights folder for `musedub dub --weights`: BASE with the checkpoint's UNet (and SyncNet), or
    with a `train-style` checkpoint's style model files."""
    replaced = compose_weights(base, checkpoint, directory)
    typer.echo(f"weights ready in {directory} ({', '.join(replaced)} from {checkpoint})")
