"""docs/gallery.md is generated from the shipped specs; this keeps it in step."""

from __future__ import annotations

import os
from pathlib import Path

from shapecalc import shipped

GALLERY = Path(__file__).parent.parent / "docs" / "gallery.md"


def test_gallery_is_current() -> None:
    text = shipped.gallery_markdown()
    if os.environ.get("SHAPECALC_UPDATE_GALLERY"):
        GALLERY.write_text(text, encoding="utf-8")
    assert GALLERY.read_text(encoding="utf-8") == text, (
        "docs/gallery.md is out of step with architectures/: SHAPECALC_UPDATE_GALLERY=1 pytest tests/test_gallery.py"
    )


def test_published_receptive_fields_agree_where_the_models_are_the_same() -> None:
    # the same networks as TF-slim's: Araujo et al.'s published fields are ours exactly
    by_name = {e.name: e for e in shipped.catalogue()}
    assert by_name["vgg11"].receptive_field == shipped.PUBLISHED_RF["vgg11"][0] == 150
    for name in ("alexnet", "vgg16", "vgg16_bn", "inception_v3"):
        if name in by_name:
            assert by_name[name].receptive_field == shipped.PUBLISHED_RF[name][0], name
    # torchvision's ResNet-50 strides in the first unit of a stage, TF-slim's in the last (see RF_NOTES)
    if "resnet50" in by_name:
        assert (by_name["resnet50"].receptive_field, shipped.PUBLISHED_RF["resnet50"][0]) == (427, 483)
    text = shipped.gallery_markdown()
    assert "| `vgg11` | 3x224x224 | 1000 | 132,863,336 | 0 | 7,609,090,048 | 150 | 150 (`vgg_a`) |" in text


def test_a_differing_published_value_gets_a_note() -> None:
    entry = shipped.Entry("resnet50", "f", (3, 224, 224), (1000,), 25_557_032, 53_173, 4_089_184_256, 427, "x")
    text = shipped.gallery_markdown([entry])
    assert "| 427 | 483 (`resnet_v1_50`) [1] |" in text
    assert "[1] TF-slim's ResNet v1 strides in the last unit" in text
