"""Bodies of ``/stats/*``: images (and, on a text horde, tokens) made per period and per model."""

from __future__ import annotations

from openhorde.api.schemas.common import ResponseModel


class SinglePeriodImgStat(ResponseModel):
    images: int = 0
    ps: int = 0
    """Pixel-steps: width × height × steps of each image, summed."""


class StatsImgTotals(ResponseModel):
    minute: SinglePeriodImgStat
    hour: SinglePeriodImgStat
    day: SinglePeriodImgStat
    month: SinglePeriodImgStat
    total: SinglePeriodImgStat


class ImgModelStats(ResponseModel):
    day: dict[str, int]
    month: dict[str, int]
    total: dict[str, int]


class SinglePeriodTxtStat(ResponseModel):
    requests: int = 0
    tokens: int = 0


class StatsTxtTotals(ResponseModel):
    minute: SinglePeriodTxtStat = SinglePeriodTxtStat()
    hour: SinglePeriodTxtStat = SinglePeriodTxtStat()
    day: SinglePeriodTxtStat = SinglePeriodTxtStat()
    month: SinglePeriodTxtStat = SinglePeriodTxtStat()
    total: SinglePeriodTxtStat = SinglePeriodTxtStat()


class TxtModelStats(ResponseModel):
    day: dict[str, int] = {}
    month: dict[str, int] = {}
    total: dict[str, int] = {}
