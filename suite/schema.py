"""Constrained field types shared by every settings dataclass (validated by pydantic)."""
from typing import Annotated

from pydantic import ConfigDict, Field

PosInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]
Share = Annotated[float, Field(gt=0, le=1)]  # a share of cases, e.g. the accuracy a solve rule asks for

# Every settings dataclass rejects unknown keys, so a typo is an error, not a silent default.
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)  # and a NaN or infinite number is refused too
