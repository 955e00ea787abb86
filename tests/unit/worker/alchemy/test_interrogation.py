import pytest
import torch
from PIL import Image

from openhorde.worker.alchemy.interrogation import TOP_TERMS, Interrogator
from openhorde.worker.alchemy.terms import TERMS
from openhorde.worker.alchemy.tiny import save_tiny_clip

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def interrogator(tmp_path_factory: pytest.TempPathFactory) -> Interrogator:
    return Interrogator.from_pretrained(save_tiny_clip(tmp_path_factory.mktemp("clip")), CPU)


def test_every_category_lists_its_best_terms_with_a_confidence(interrogator: Interrogator) -> None:
    ranking = interrogator.interrogate(Image.new("RGB", (40, 30), (10, 120, 200)))

    assert set(ranking) == set(TERMS)
    for category, ranked in ranking.items():
        assert len(ranked) == TOP_TERMS
        assert all(set(item) == {"text", "confidence"} and item["text"] in TERMS[category] for item in ranked)
        confidences = [float(item["confidence"]) for item in ranked]
        assert confidences == sorted(confidences, reverse=True)
        assert all(-100 <= value <= 100 for value in confidences)


def test_the_ranking_is_clips_cosine_similarity(interrogator: Interrogator) -> None:
    # Against a text embedding computed independently through the model, the best term's score matches.
    image = Image.new("RGB", (32, 32), (250, 250, 250))
    best = interrogator.interrogate(image, top=1)["tags"][0]
    index = TERMS["tags"].index(str(best["text"]))
    pixels = interrogator.images(images=image, return_tensors="pt").pixel_values
    with torch.inference_mode():
        output = interrogator.model.get_image_features(pixel_values=pixels)
    features = output if isinstance(output, torch.Tensor) else output.pooler_output
    query = torch.nn.functional.normalize(features, dim=-1)[0]
    expected = float(interrogator.embeddings["tags"][index] @ query) * 100
    assert float(best["confidence"]) == pytest.approx(expected, abs=0.01)
    every = (interrogator.embeddings["tags"] @ query) * 100
    assert float(best["confidence"]) == pytest.approx(float(every.max()), abs=0.01)
