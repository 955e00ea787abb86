import torch
from PIL import Image

from openhorde.worker.postprocess.tensors import to_image, to_tensor


def test_an_image_survives_the_round_trip_through_a_tensor() -> None:
    image = Image.new("RGB", (5, 3), (12, 200, 99))

    tensor = to_tensor(image, torch.device("cpu"))

    assert tensor.shape == (1, 3, 3, 5)
    assert float(tensor.max()) <= 1.0
    assert to_image(tensor).tobytes() == image.tobytes()
