"""recakit.images: every common image mode becomes 8-bit RGB; broken files are named."""

import pytest
from PIL import Image

from recakit.images import fit_longest_side, load_images


def test_every_mode_becomes_rgb_with_the_right_colours(odd_mode_images):
    images = odd_mode_images
    assert {name: image.mode for name, image in images.items()} == {name: name for name in images}
    converted = dict(zip(images, load_images(list(images.values()))))
    for name, image in converted.items():
        assert image.mode == "RGB" and image.size == (8, 6), name
    assert converted["RGBA"].getpixel((3, 3)) == (255, 255, 255)  # transparent -> white background
    assert converted["RGBA"].getpixel((0, 0)) == (0, 0, 255)  # opaque pixel kept
    assert converted["LA"].getpixel((0, 0)) == (10, 10, 10)
    assert converted["L"].getpixel((0, 0)) == (77, 77, 77)
    assert converted["P"].getpixel((0, 0)) == (0, 200, 0)
    assert converted["CMYK"].getpixel((0, 0)) == (255, 0, 0)
    assert converted["I;16"].getpixel((0, 0)) == (127, 127, 127)  # half of 16-bit range -> half of 8-bit


def test_paths_and_files(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("L", (5, 5), 9).save(path)
    [image] = load_images(path)
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (9, 9, 9)
    broken = tmp_path / "notes.png"
    broken.write_text("this is not an image")
    with pytest.raises(ValueError, match="notes.png"):
        load_images([path, broken])
    with pytest.raises(ValueError, match="missing.png"):
        load_images([tmp_path / "missing.png"])


def test_fit_longest_side_keeps_aspect():
    image = Image.new("RGB", (40, 20))
    assert fit_longest_side(image, 10).size == (10, 5)
    with pytest.raises(ValueError):
        fit_longest_side(image, 0)


def test_camera_rotation_is_applied_and_folders_are_refused(tmp_path):
    sideways = Image.new("RGB", (6, 4), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees clockwise to display
    sideways.save(tmp_path / "portrait.jpg", exif=exif)
    [upright] = load_images(tmp_path / "portrait.jpg")
    assert upright.size == (4, 6)
    with pytest.raises(ValueError, match="is a folder"):
        load_images(tmp_path)
