"""Request bodies to model inputs, in memory only: raw image bytes, multipart uploads, JSON.

Nothing here opens a path: a request's bytes are decoded from memory, and every size is checked first.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass
from typing import Any

from zoo.errors import InputError, ZooError

__all__ = ["Payload", "TooLarge", "check_image", "parse_body"]


class TooLarge(ZooError):
    """A request body or image larger than the server's limits (HTTP 413)."""


@dataclass(frozen=True)
class Payload:
    """One model input taken from a request.

    Attributes:
        data: image bytes, or a numpy HWC uint8 array.
        source: the uploaded file's name, or None.
        options: prediction options given in a JSON body.
    """

    data: Any
    source: str | None = None
    options: dict[str, Any] | None = None


def parse_body(body: bytes, content_type: str) -> Payload:
    """The input a request body carries: raw image bytes, a multipart upload, or JSON.

    JSON bodies are `{"image_base64": "..."}` or `{"array": [[[r, g, b], ...], ...]}` (HWC, 0-255), with
    optional prediction options (`"top_k": 3`).

    Raises:
        InputError: an empty body, a multipart body with no file, or JSON of another shape.
    """
    if not body:
        raise InputError("The request has no body: send an image (raw bytes, multipart upload, or JSON).")
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        return _multipart(body, content_type)
    if kind == "application/json":
        return _json(body)
    return Payload(body)


def _multipart(body: bytes, content_type: str) -> Payload:
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise InputError("The multipart body cannot be parsed: upload the image as a form field named 'file'.")
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") in ("file", "image") or part.get_filename():
            data = part.get_payload(decode=True)
            if not isinstance(data, bytes) or not data:
                break
            name = part.get_filename()
            return Payload(data, source=str(name)[:200] if name else None)
    raise InputError("The multipart body has no file: upload the image as a form field named 'file'.")


def _json(body: bytes) -> Payload:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise InputError(f"The JSON body cannot be parsed: {exc}.") from None
    if not isinstance(data, dict):
        raise InputError('A JSON body is an object: {"image_base64": "..."} or {"array": [[[r, g, b], ...]]}.')
    options = {k: v for k, v in data.items() if k not in ("image_base64", "array")}
    if "image_base64" in data:
        if not isinstance(data["image_base64"], str):
            raise InputError("image_base64 is not a string.")
        try:
            return Payload(base64.b64decode(data["image_base64"], validate=True), options=options)
        except (binascii.Error, ValueError):
            raise InputError("image_base64 is not valid base64.") from None
    if "array" in data:
        return Payload(_array(data["array"]), options=options)
    raise InputError('The JSON body has no image: send {"image_base64": "..."} or {"array": [[[r, g, b], ...]]}.')


def _array(value: Any) -> Any:
    import numpy as np

    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        raise InputError("array is not a rectangular HWC array of numbers.") from None
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3) or array.dtype.kind not in "iuf":
        raise InputError(f"array has shape {array.shape}: send height x width x 3 (or 1) numbers from 0 to 255.")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise InputError("array values are outside 0 to 255.")
    return np.ascontiguousarray(array.astype(np.uint8))


def check_image(payload: Payload, max_pixels: int) -> None:
    """Refuse what is not an image (InputError) or has more than `max_pixels` pixels (TooLarge), from its header."""
    if not isinstance(payload.data, bytes):
        height, width = payload.data.shape[:2]
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(payload.data)) as image:
                width, height = image.size
        except Image.DecompressionBombError:
            raise TooLarge(f"The image has more pixels than this server's limit of {max_pixels}.") from None
        except (UnidentifiedImageError, OSError, ValueError):
            raise InputError("The upload is not an image zoo can read (JPEG, PNG, WebP, GIF, BMP, TIFF).") from None
    if width * height > max_pixels:
        raise TooLarge(f"The image has {width}x{height} pixels, more than this server's limit of {max_pixels}.")
    if width < 1 or height < 1:
        raise InputError("The image is empty.")
