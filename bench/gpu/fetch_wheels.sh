#!/usr/bin/env bash
# Download, into .whl/, the wheels the worker benchmark needs beyond what the GPU machine's image has
# (CUDA PyTorch, transformers, accelerate, safetensors, httpx, typer, rich and pyyaml are there), for
# its Python 3.12, plus the CLIP merge list. Run here with network access; the device run carries .whl/.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
    platforms+=(--platform "$tag")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" -d .whl \
    diffusers==0.42.1 importlib_metadata fastapi==0.165.0 starlette==1.10.0 opentelemetry-api annotated-doc \
    pydantic==2.14.4 pydantic-core annotated-types typing-inspection pydantic-settings==2.16.3 python-dotenv \
    uvicorn==0.54.0 h11 sqlalchemy==2.1.9 greenlet alembic==1.20.1 mako aiosqlite torchsde trampoline typing_extensions
cp "$(.venv/bin/python -c 'from openhorde.worker.models.tokenizer import vocab_path; print(vocab_path())')" .whl/
echo "==> $(ls .whl | wc -l) files, $(du -sh .whl | cut -f1) in .whl/"
