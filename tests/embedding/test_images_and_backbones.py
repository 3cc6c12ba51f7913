import io

import pytest
from PIL import Image

from fashionrec.core.errors import BackboneUnavailableError, ConfigError
from fashionrec.embedding.backbones import embedding_dim, encoder_key, get_encoder
from fashionrec.embedding.images import ImageRejected, load_image


def test_load_image_converts_to_rgb_on_white(tmp_path):
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    rgba.save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.mode == "RGB" and img.getpixel((5, 5)) == (255, 255, 255)
    Image.new("L", (10, 10), 40).save(tmp_path / "g.jpg")
    assert load_image(tmp_path / "g.jpg").mode == "RGB"


@pytest.mark.parametrize(
    "content, reason",
    [(None, "missing"), (b"", "empty"), (b"<html><body>404</body></html>", "not an image")],
)
def test_bad_images_are_rejected_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "x.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageRejected, match=reason):
        load_image(path)


def test_truncated_jpeg_is_rejected(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buf, "JPEG")
    (tmp_path / "t.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageRejected, match="unreadable"):
        load_image(tmp_path / "t.jpg")


def test_efficientnet_lite0_ships_real_weights():
    enc = get_encoder("efficientnet_lite0")
    assert enc.dim == 1280 == embedding_dim("efficientnet_lite0")
    assert enc.key == encoder_key("efficientnet_lite0")
    # pretrained, not random: batch-norm statistics are not at their initial values
    bn = [m for m in enc.model.modules() if m.__class__.__name__.startswith("BatchNorm")][0]
    assert float(bn.running_var.mean()) != 1.0


def test_resnet50_random_weights_give_2048_d():
    import torch

    enc = get_encoder("resnet50_random")
    with torch.inference_mode():
        out = enc.model(torch.zeros(1, 3, 224, 224))
    assert out.shape == (1, 2048)


def test_resnet50_without_weights_says_what_to_do(tmp_path, monkeypatch):
    from fashionrec.embedding import backbones

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    backbones._build.cache_clear()
    with pytest.raises(BackboneUnavailableError) as err:  # no network here, no cached file
        get_encoder("resnet50")
    msg = str(err.value)
    assert "resnet50-" in msg and str(tmp_path) in msg and "--backbone efficientnet_lite0" in msg


def test_unknown_backbone_lists_the_choices():
    with pytest.raises(ConfigError, match="efficientnet_lite0"):
        embedding_dim("vgg16")
