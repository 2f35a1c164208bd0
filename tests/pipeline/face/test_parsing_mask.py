"""The 'jaw' parsing mask: skin grown past the jaw, cheeks thinned, lips in, nose out."""

from __future__ import annotations

import numpy as np

from musedub.models.face_parsing import LOWER_LIP, NOSE, PARSE_SIZE, SKIN, UPPER_LIP
from musedub.pipeline.face.crop_geometry import Box
from musedub.pipeline.face.parsing_mask import cone_kernel, jaw_region, parser_input, region_in_box


def test_cone_kernel_widens_then_runs_straight() -> None:
    kernel = cone_kernel()
    assert kernel.shape == (33, 33)
    widths = kernel.sum(axis=1)
    assert widths[:10].sum() == 0
    assert list(widths[10:21]) == list(range(1, 22, 2)) and set(widths[21:]) == {21}
    assert np.array_equal(kernel, kernel[:, ::-1])


def synthetic_face() -> np.ndarray:
    """Class ids on the 512 grid: a skin block, a nose in it, lips below the skin, background around."""
    parsing = np.zeros((PARSE_SIZE, PARSE_SIZE), np.uint8)
    parsing[100:400, 60:452] = SKIN
    parsing[200:280, 226:286] = NOSE
    parsing[420:440, 206:306] = UPPER_LIP  # detached from the skin: included anyway
    parsing[440:450, 206:306] = LOWER_LIP
    return parsing


def test_jaw_region_keeps_skin_and_lips_and_leaves_out_nose_and_background() -> None:
    region = jaw_region(synthetic_face())
    assert set(np.unique(region)) == {0, 255}
    assert (region[200:280, 226:286] == 0).all()  # nose
    assert (region[420:450, 206:306] == 255).all()  # lips
    assert (region[150:190, 200:300] == 255).all()  # skin
    assert (region[:60] == 0).all() and (region[480:] == 0).all()  # far background


def test_cheeks_are_thinned_but_not_the_centre() -> None:
    parsing = synthetic_face()
    region = jaw_region(parsing)
    grown_centre = np.nonzero(region[:, 256] == 255)[0]
    # centre column: skin grows down past the jaw (here the skin's bottom edge at row 399)
    assert grown_centre.max() > 399
    # a cheek column far from the centre keeps less than the skin it started with
    cheek = 80
    assert (region[:, cheek] == 255).sum() < (parsing[:, cheek] == SKIN).sum()
    # with a band as wide as the grid there are no cheeks: that column then keeps all its skin
    wide = jaw_region(parsing, cheek_width=PARSE_SIZE)
    assert (wide[:, cheek] == 255).sum() >= (parsing[:, cheek] == SKIN).sum()


def test_parser_input_pads_outside_the_frame_and_region_maps_back_to_the_box() -> None:
    frame = np.full((100, 120, 3), 200, np.uint8)
    square = Box(-20, -10, 80, 90)  # 100x100, sticks out left and top
    squared = parser_input(frame, square)
    assert squared.shape == (PARSE_SIZE, PARSE_SIZE, 3)
    assert (squared[300:, 300:] == 200).all()
    assert (squared[:40, :40] == 0).all()  # the part past the frame is black, as the reference crops
    region = np.zeros((PARSE_SIZE, PARSE_SIZE), np.uint8)
    region[256:] = 255  # lower half of the square
    box = Box(0, 20, 60, 80)
    in_box = region_in_box(region, box, square)
    assert in_box.shape == (60, 60)
    assert (in_box[:15] == 0).all() and (in_box[45:] == 255).all()  # square row 40 = box row 10 is the cut
