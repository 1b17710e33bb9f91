"""Resize, CenterCrop and RandomResizedCrop against torchvision, and their own contracts.

The golden constants below are torchvision's outputs on the same pixels, computed once by
tests/data/transforms/torchvision_goldens.py (torch 2.14.1, torchvision 0.29.1, Pillow 13.0.0;
run with /work/venv-bench/bin/python) and pasted here: torchvision is not a test dependency.
"""

import base64
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch import DataLoader, TensorDataset
from tinytorch.data.transforms.compose import Compose
from tinytorch.data.transforms.image import RandomHorizontalFlip
from tinytorch.data.transforms.normalize import Normalize, ToFloat
from tinytorch.data.transforms.resample import Boxes, resized_crops
from tinytorch.data.transforms.resize import CenterCrop, RandomResizedCrop, Resize, ResizedCropThenFlip

# ---- golden values (torchvision_goldens.py) ---------------------------------------------------

CENTER_CROP = {
    (4, 5): "FxgZGhshIiMkJSssLS4vNTY3ODldXl9gYWdoaWprcXJzdHV7fH1+fw==",
    (3, 3): "GRobIyQlLS4vX2BhaWprc3R1",
    (
        7,
        10,
    ): "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl9gYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoOEhYaHiImKi4w=",
    (
        8,
        9,
    ): "AQIDBAUGBwgJCwwNDg8QERITFRYXGBkaGxwdHyAhIiMkJSYnKSorLC0uLzAxMzQ1Njc4OTo7PT4/QEFCQ0RFAAAAAAAAAAAAR0hJSktMTU5PUVJTVFVWV1hZW1xdXl9gYWJjZWZnaGlqa2xtb3BxcnN0dXZ3eXp7fH1+f4CBg4SFhoeIiYqLAAAAAAAAAAAA",
    (
        9,
        13,
    ): "AAAAAAAAAAAAAAAAAAABAgMEBQYHCAkKAAAACwwNDg8QERITFAAAABUWFxgZGhscHR4AAAAfICEiIyQlJicoAAAAKSorLC0uLzAxMgAAADM0NTY3ODk6OzwAAAA9Pj9AQUJDREVGAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABHSElKS0xNTk9QAAAAUVJTVFVWV1hZWgAAAFtcXV5fYGFiY2QAAABlZmdoaWprbG1uAAAAb3BxcnN0dXZ3eAAAAHl6e3x9fn+AgYIAAACDhIWGh4iJiouMAAAAAAAAAAAAAAAAAAAA",
    (
        5,
        12,
    ): "AAsMDQ4PEBESExQAABUWFxgZGhscHR4AAB8gISIjJCUmJygAACkqKywtLi8wMTIAADM0NTY3ODk6OzwAAFFSU1RVVldYWVoAAFtcXV5fYGFiY2QAAGVmZ2hpamtsbW4AAG9wcXJzdHV2d3gAAHl6e3x9fn+AgYIA",
    (
        6,
        7,
    ): "AwQFBgcICQ0ODxAREhMXGBkaGxwdISIjJCUmJyssLS4vMDE1Njc4OTo7SUpLTE1OT1NUVVZXWFldXl9gYWJjZ2hpamtsbXFyc3R1dnd7fH1+f4CB",
}
RESIZE_PIL = {
    ((5, 7), "bilinear"): (
        (3, 5, 7),
        "M2qIdqOJUnCIqmq1holtfaBpdIVzflZYlmWJcYmDZoVuh6Zub3B4QIF0g1tVnGOBfYhtc4xug6iWbWliXIOal2mJa2Nwpp1/iJVugqmcc21mYomfmHR6cHR5ioKRk3+ZeW89eYaAo2tX",
    ),
    (8, "bilinear"): (
        (3, 8, 10),
        "Dj9joZCGnIxwMzeTX4xTacuZk2ZhkY/IeXvKin2DWYegw2lNr2+MfGh2XZGXVUiwZWWKf0pCp5pSjW9pa09RO3CYa5KHtpe6mGyHjFl9ja5VdHqJi1c9f5l6fnthP5peKYFfZ4ZzOEGhuFx2iIV9aYlWgpBzmYTDr15weZSLVGWMrJeRamRgSV15maWmf0pqbmZfcXmfnW2AoYlRdU6dzpyGtnefk3KUh8G6cGR/mH9ZYIyuko9yY1pSZ4mjqbiPTXtyZWRre5yYZZyAaXuOXrFhqnOrlYWBpHl2VENwjZuGY6aCm08lZXqJdJi8YlA8",
    ),
    ((14, 19), "bilinear"): (
        (3, 14, 19),
        "AAUULE14re6PjJFQuV3Bw4VPJwooUYOFQbZuiYCAwMSDclQwIDEVTZKocCTAaE4zWdLQrJGUnYU8IXKYd1KBzY9oUW3C3NWQj7y8SCyXnm903dq2gm6BseaudVZ/rVM3nLWzusrlu1MtVKDuU3BldJ5eQklabYa072F/VS6J6Z9TkL6MaU1vnWknePiJwrZhKCCrmHliWHRYlGVkgkg+ioJkOxAa0t57Mkd/Y7mbdWAuE6i6ppqGIWyZjVQ3im99akMjGx1ni5+7wCtGkpiGipZ6UEBDTlgqNmN0ja84gKp8jd2hhZCmrbfKOHqni3iUQ5mPXnbErI+z46pgkkGdYX+mYUkPlbiblbZHTFtzlL/0ZH9TMGcHg1OYzJZuUW+YcD1tOWK9rF40EqiTg3dneFyUdmt2Sg2AlXpJGRlCqIA/T4NouZJ3dDcXp6+YiXEjHI2PUECPc5mJWjAkIYSqtcjJL0WMnYV3mn5JMzE4QS0uVnSbuDt4t46a5aWJkJaqzdo9ebqTdaNIuJRTddOwlLZULW6dRqBthqhsTyGbtp6fu5/bizQ6h1DHpY+CV1o7TGh5jsaqg6GTZnVaaFxIPUdmZISrm37RtmN+impiZEVSZlY2co1+pptw3cGXh2E6T259bo18JXx3YnlvYejMrrd8NWJ6wWlSVTiFMHWMbnLz1jcqZKfZiOSoRkSokFYmjeLc/Y6Torrb5UJ8xpp3rk7KmlF43bWYtmVIhK1Ln4COpXtUQKCrna6/o9uFNkiRVMegk5BgXjpgfYaWyq+fpoVgfl6Gdl9QUGpjeZ2Xh9a6Yo+hd2toRE1XSz92jJK8qHjhxZB6X0hYc3V5n4ougY9ee3xp7NDJ1oYmUn2xXVpeKYkviZJfYOXbSD1so9SNJldNTKSVWTOT3aEU5l9te4HOlz2Vu6WeoYJslsCYDfGEYX+tvKFlhI+Ejq2rVk1+iBh9i3iKsamrjJltSX251GptlHokCFtydYGWtXmWgldsw75omLZrLxMeNFRseb83WZmcf8x3LVt+UjodQXGrpELIW5eNi+/XnW1GKSNE",
    ),
    ((5, 7), "bicubic"): (
        (3, 5, 7),
        "LGaIdqiMTnORsFzEhI5rgatmcIdufkpLnWCMboqIYohvgq1tc3V5NYZxhFNJpGGAfYltd5BvgK+camdiVYOZl2aPaGBurZ1/jJhsf62gbmtlWomim3N4bHB5i4KVmH2dgG02e4V+qWxS",
    ),
    ((5, 7), "nearest"): (
        (3, 5, 7),
        "PMS8tMlNCaYG1qbjP9N9Bf31Co5K50cX5ySAFInBMdk+ct6DCwP7EJRQ7U0d7SqGGsRMRDxR1ZEujl4ua8db0Ah4IIW5JcpSSkJX25c0lGQ0cc1hC5OLg5gc2HXVpXWyDqIXT79nzABs",
    ),
    ((9, 4), "bicubic"): (
        (3, 9, 4),
        "K5aSZGtkmnZylKmYn6F+eWWWdYNybGFvZmWNdlxagp2uhm2Ua4lXjW5gUWl/en5pTE2Mpo2Ne5l+gGB/iFNcpYRmYnp9ll+knZaInXyIbIuWX12mgGtviY9sXoOFjZeBmJOJalWIh39ZgaJE",
    ),
}
RESIZE_TENSOR = {
    ((5, 7), "bilinear"): (
        (3, 5, 7),
        "M2qIdqOJUnCIqmq1holtfaBpdIVzflZYlmWJcYmDZoVuh6Zub3B4QIF0g1tVnGOBfYhtc4xug6iWbWliXIOal2mJa2Nwpp1/iJVugqmcc21mYomfmHR6cHR5ioKRk3+ZeW89eYaAo2tX",
    ),
    (8, "bilinear"): (
        (3, 8, 10),
        "Dj9joZCGnIxwMzeTX4xTacuZk2ZhkY/IeXvKin2DWYegw2lNr2+MfGh2XZGXVUiwZWWKf0pCp5pSjW9pa09RO3CYa5KHtpe6mGyHjFl9ja5VdHqJi1c9f5l6fnthP5peKYFfZ4ZzOEGhuFx2iIV9aYlWgpBzmYTDr15weZSLVGWMrJeRamRgSV15maWmf0pqbmZfcXmfnW2AoYlRdU6dzpyGtnefk3KUh8G6cGR/mH9ZYIyuko9yY1pSZ4mjqbiPTXtyZWRre5yZZZyAaXuOXrFhqnOrlYWBpHl2VENwjZuGY6aCm08lZXqJdJi8YlA8",
    ),
    ((14, 19), "bilinear"): (
        (3, 14, 19),
        "AAUULE14re6PjJFPuV3Bw4VPJwooUIOFQbZuiYCAwMSDclQwIDEVTZOpcCTAaE4zWdLQrJGUnYU8IXKYd1KBzY9oUW3C3NWQj7y9SCyXnW903dq2gm6BseavdFZ/rlM3nLWzusrlulMtVKDuU3BldJ5eQklabYa072F/VS6I6Z9TkL6MaU1vnWknePiJwrZhKCCrmHliWHRYlGVlgkc+ioJkOxAa0t57Mkd/Y7mbdWAtE6i6ppqGImyZjVQ3im99akMjGx1mi5+7wCtGkpiGipZ6UEBDTlgqNWN0ja84gKp8jd2hhZCnrbfKOHqni3iURJiQXnbErI+z46pgkkGdYX+mYUkPlbiblbZHTFtzlL/0ZH9TMGcHg1OYzJZuUW+XcD1tOWK9rF40EqiTg3dneFyUdmx2SQ2AlXpJGRpCqYA/T4NouZJ4dDcXp6+YiXEjHI2PUECPc5mJWjAkIYOqtcjJL0WMnYV3mn5JMzE4QS0uVnSbuDt4t46a5aWJkJaqzdo9ebqTdaNIuJRTddOwlLZULW6dRqBthqhsTyGbtp6fu5/bijM6h1DHpY+CV1o7TGh5jsaqg6GTZnRaaFxIPEdmZISrm37RtmN+impiZEVSZlY2co1+pptw3cGXh2E6T258bo18JXx3YXlvYejMrbd8NWJ6wWlSVTeFMHWMbnLz1jYqZKfZiOSoRkSokFYmjeLc/Y6Torrb5UJ8xpp3rk7KmlF43bWYtmVIhK1Ln4COpXtTQZ+rna6/o9uGN0iQVMegk5BgXjpgfYaWyq+fpoVgfl6Gdl9QUGpjeZ2Xh9a6Yo+hd2toRE1XSz92jJK8qHjhxZB6X0hYc3V5n4ougY9fe3xp7NDJ1oYmUn2xXVpeKIkviZJfYOXbRz1so9SNJldNTKSVWTOT3aEU5l9seoHOlz2Vu6WeoYJslsCYDfGEYX+tu6FlhI+Djq2rVk1+iRh9i3iKsamrjJltSX251GptlHokCFtydYGWtXiWgldsw75omLZrLxMeNVRseb83WZmcfsx3LVt+UjodQXGrpELIW5eNi+/XnW1GKSNE",
    ),
    ((5, 7), "bicubic"): (
        (3, 5, 7),
        "LGaIdqiMTnORsFzEhI5rgatmcIdufkpLnWCMboqIYohvgq1tc3V5NYZxg1NJpGGAfYltd5BvgK+camdiVYOZl2aPaGBurZ1/jJhsf62gbmtlWomim3N4bHB5i4KVmH2dgG02e4V+qWxS",
    ),
    ((9, 4), "bicubic"): (
        (3, 9, 4),
        "K5aSZGtkmnZylKmYn6F+eWWWdYNybGFvZmWNdlxagp2uhm2Ua4lXjW5gUWl/en5pTE2Mpo2Ne5l+gGB/iFNcpYRmYnp9ll+knZaInXyIbIuWX12mgGtviY9sXoOFjZeBmJOJalWIh39ZgaJE",
    ),
}
RESIZE_FLOAT_TENSOR = [
    [
        0.19949500262737274,
        0.41627201437950134,
        0.5338360071182251,
        0.46157699823379517,
        0.6422240138053894,
        0.5361719727516174,
        0.32466399669647217,
    ],
    [
        0.44170600175857544,
        0.5320360064506531,
        0.6650009751319885,
        0.41349300742149353,
        0.7126190066337585,
        0.5264459848403931,
        0.5380309820175171,
    ],
    [
        0.4275349974632263,
        0.4909389913082123,
        0.6256510019302368,
        0.41263601183891296,
        0.4557960033416748,
        0.5218409895896912,
        0.4505220055580139,
    ],
    [
        0.4941380023956299,
        0.33881399035453796,
        0.3435310125350952,
        0.585532009601593,
        0.39633598923683167,
        0.5370709896087646,
        0.4435350000858307,
    ],
    [
        0.5381460189819336,
        0.5140429735183716,
        0.3982059955596924,
        0.5221089720726013,
        0.431333988904953,
        0.5309410095214844,
        0.649711012840271,
    ],
]
RESIZE_FLOAT_PIL = [
    [
        0.19949500262737274,
        0.41627201437950134,
        0.5338360071182251,
        0.46157699823379517,
        0.6422240138053894,
        0.5361719727516174,
        0.32466399669647217,
    ],
    [
        0.44170600175857544,
        0.5320360064506531,
        0.6650000214576721,
        0.41349300742149353,
        0.7126190066337585,
        0.5264459848403931,
        0.5380309820175171,
    ],
    [
        0.4275349974632263,
        0.4909389913082123,
        0.6256510019302368,
        0.41263601183891296,
        0.4557960033416748,
        0.5218409895896912,
        0.4505220055580139,
    ],
    [
        0.4941380023956299,
        0.33881399035453796,
        0.3435310125350952,
        0.585532009601593,
        0.39633598923683167,
        0.5370709896087646,
        0.4435350000858307,
    ],
    [
        0.5381460189819336,
        0.5140429735183716,
        0.3982059955596924,
        0.5221089720726013,
        0.431333988904953,
        0.5309410095214844,
        0.649711012840271,
    ],
]
RESIZE_SIZES = {
    (12, 16, 8, 9): (7, 9),
    (16, 12, 8, 9): (9, 7),
    (12, 16, None, 10): (7, 10),
    (375, 500, 256, None): (256, 341),
    (500, 333, 224, None): (336, 224),
    (333, 500, 224, 300): (200, 300),
    (7, 7, 3, None): (3, 3),
}
RESIZED_CROP_PIL = "VJpwRbjRlteYYbGmiMiAUIahVnuWdh+QWDGvpXZUezaaekwYJCt0qKNGoGyBiId9VnOejmY3amVeQktlV3OVa1pfa2VVbk+NRHh4aFVenZ5Xhp1+saN2iZKs"
RESIZED_CROP_TENSOR = "VJpwRbjRlteYYbGmiMiAUIahVnuWdh+QWDGvpXZUezaaekwYJCt0qKNGoGyBiId9VnOejmY3amVeQktlV3OVa1pfa2VVbk+NRHh4aFVenZ5Xhp1+saN2iZKs"
RRC_BOXES = [
    (
        (375, 500),
        (0.08, 1.0),
        (0.75, 1.3333333333333333),
        [(0.53655606508255, 1.166870355606079)],
        (17, 80),
        (17, 80, 294, 343),
    ),
    (
        (375, 500),
        (0.08, 1.0),
        (0.75, 1.3333333333333333),
        [(0.7770211100578308, 0.880754292011261), (0.45082372426986694, 1.144569993019104)],
        (71, 153),
        (71, 153, 272, 311),
    ),
    ((32, 32), (0.5, 1.0), (0.5, 2.0), [(0.8073475360870361, 0.8479350805282593)], (1, 2), (1, 2, 31, 26)),
    (
        (100, 60),
        (0.9, 1.0),
        (1.0, 1.5),
        [
            (0.9004263281822205, 1.043734073638916),
            (0.9285842180252075, 1.0109891891479492),
            (0.9471614360809326, 1.0246745347976685),
            (0.9771865606307983, 1.3519448041915894),
            (0.959442138671875, 1.4333220720291138),
            (0.945103108882904, 1.3828762769699097),
            (0.9149840474128723, 1.1767796277999878),
            (0.9054176807403564, 1.204750895500183),
            (0.9175605177879333, 1.4694093465805054),
            (0.9847318530082703, 1.4257866144180298),
        ],
        None,
        (20, 0, 60, 60),
    ),
    (
        (10, 200),
        (0.9, 1.0),
        (0.75, 1.3333333333333333),
        [
            (0.9559638500213623, 1.0345842838287354),
            (0.9091456532478333, 0.8463233709335327),
            (0.9007194638252258, 0.7670028209686279),
            (0.9992894530296326, 1.268316626548767),
            (0.9618579149246216, 1.3138296604156494),
            (0.9318912029266357, 0.8486762046813965),
            (0.9926260113716125, 0.9848783016204834),
            (0.9594945907592773, 1.1853841543197632),
            (0.9763484597206116, 0.8481267690658569),
            (0.9306631684303284, 0.7668226361274719),
        ],
        None,
        (0, 93, 10, 13),
    ),
    (
        (200, 10),
        (0.9, 1.0),
        (0.75, 1.3333333333333333),
        [
            (0.9830251932144165, 0.8064427375793457),
            (0.9907469749450684, 1.2021055221557617),
            (0.9920103549957275, 0.8020626306533813),
            (0.9164391160011292, 1.1467024087905884),
            (0.9033264517784119, 1.3288795948028564),
            (0.9606428742408752, 1.0378507375717163),
            (0.9072412252426147, 1.096011757850647),
            (0.97150057554245, 1.04669988155365),
            (0.9980927109718323, 1.0902378559112549),
            (0.9056633710861206, 1.273434042930603),
        ],
        None,
        (93, 0, 13, 10),
    ),
    (
        (50, 60),
        (1.5, 2.0),
        (0.75, 1.3333333333333333),
        [
            (1.7860987186431885, 1.03148353099823),
            (1.9934149980545044, 1.0641287565231323),
            (1.6173279285430908, 0.9711830615997314),
            (1.8371682167053223, 1.1533775329589844),
            (1.7800545692443848, 0.8258194327354431),
            (1.6666648387908936, 0.9799240231513977),
            (1.8166221380233765, 1.1675580739974976),
            (1.6073510646820068, 1.1758161783218384),
            (1.9322047233581543, 1.0623812675476074),
            (1.682486891746521, 0.8678096532821655),
        ],
        None,
        (0, 0, 50, 60),
    ),
]


def photo(c, h, w):
    """The image torchvision_goldens.py used (no random generator involved)."""
    z, y, x = np.mgrid[0:c, 0:h, 0:w]
    return ((x * x * 7 + y * 13 + z * 71 + (x * y) % 5 * 40) % 256).astype(np.uint8)


def decode(shape, text):
    return np.frombuffer(base64.b64decode(text), np.uint8).reshape(shape)


def photos(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (3, h, w), dtype=np.uint8) for h, w in sizes]


# ---- CenterCrop: the same pixels as torchvision -----------------------------------------------


@pytest.mark.parametrize("size", list(CENTER_CROP))
def test_center_crop_equals_torchvision(size):
    small = (np.arange(2 * 7 * 10).reshape(2, 7, 10) % 251 + 1).astype(np.uint8)
    expected = decode((2, *size), CENTER_CROP[size])
    crop = CenterCrop(size)
    np.testing.assert_array_equal(crop(small), expected)  # one image
    np.testing.assert_array_equal(crop(np.stack([small, small])), np.stack([expected] * 2))  # a batch
    other = np.full((2, 3, 4), 9, np.uint8)
    out = crop([small, other, small])  # a list of different sizes: one array
    assert out.shape == (3, 2, *size)
    np.testing.assert_array_equal(out[0], expected)
    np.testing.assert_array_equal(out[2], expected)
    np.testing.assert_array_equal(out[1], CenterCrop(size)(other))


def test_center_crop_anchor_rounds_halves_to_even():
    # (H - h) / 2 = 2.5 -> 2 and 3.5 -> 4, as Python's round() in torchvision.
    assert CenterCrop.anchors(np.array([7, 9, 6, 3]), 2).tolist() == [2, 4, 2, 0]
    assert CenterCrop.anchors(np.array([2, 1]), 7).tolist() == [-2, -3]  # padded: (7 - H) // 2 zeros first


# ---- Resize -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "mode"), list(RESIZE_PIL))
def test_resize_equals_torchvision_on_pil_images(size, mode):
    shape, text = RESIZE_PIL[size, mode]
    np.testing.assert_array_equal(Resize(size, interpolation=mode)(photo(3, 12, 16)), decode(shape, text))


@pytest.mark.parametrize(("size", "mode"), list(RESIZE_TENSOR))
def test_resize_is_within_one_of_torchvision_on_tensors(size, mode):
    # torchvision's antialiased tensor kernel rounds differently from Pillow: at most 1 apart.
    shape, text = RESIZE_TENSOR[size, mode]
    ours = Resize(size, interpolation=mode)(photo(3, 12, 16)).astype(int)
    assert np.abs(ours - decode(shape, text)).max() <= 1


def test_resize_float32_images():
    plane = photo(1, 12, 16).astype(np.float32) / 255
    out = Resize((5, 7))(plane)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], RESIZE_FLOAT_PIL, atol=1e-6)
    np.testing.assert_allclose(out[0], RESIZE_FLOAT_TENSOR, atol=2e-5)


@pytest.mark.parametrize(("key", "expected"), list(RESIZE_SIZES.items()))
def test_resize_output_size_rule_equals_torchvision(key, expected):
    h, w, size, max_size = key
    resize = Resize(size, max_size=max_size)
    out_h, out_w = resize.output_sizes(np.array([h]), np.array([w]))
    assert (int(out_h[0]), int(out_w[0])) == expected
    assert resize(np.zeros((1, h, w), np.uint8)).shape == (1, *expected)


def test_resize_shapes_of_lists_and_batches():
    images = photos([(375, 500), (333, 500), (500, 375)])
    out = Resize((224, 224))(images)
    assert out.shape == (3, 3, 224, 224)
    assert out.dtype == np.uint8
    kept = Resize(256)(images)  # aspect ratios kept: a list again
    assert [x.shape for x in kept] == [(3, 256, 341), (3, 256, 384), (3, 341, 256)]
    np.testing.assert_array_equal(kept[1], Resize(256)(images[1]))
    assert Resize(256)(np.stack([images[0]] * 2)).shape == (2, 3, 256, 341)
    assert Resize(256)(images[0]).shape == (3, 256, 341)
    # The evaluation pipeline: a list of photos becomes one normalized batch.
    pipeline = Compose([Resize(256), CenterCrop(224), ToFloat(), Normalize([0.5] * 3, [0.25] * 3)])
    batch, labels = pipeline((images, np.arange(3)))
    assert batch.shape == (3, 3, 224, 224)
    assert batch.dtype == np.float32
    assert labels.tolist() == [0, 1, 2]


def test_resized_crop_equals_torchvision():
    out = resized_crops([photo(3, 12, 16)], Boxes(*(np.array([v]) for v in (2, 3, 7, 9))), (5, 6))
    np.testing.assert_array_equal(out[0], decode((3, 5, 6), RESIZED_CROP_PIL))
    assert np.abs(out[0].astype(int) - decode((3, 5, 6), RESIZED_CROP_TENSOR)).max() <= 1


# ---- RandomResizedCrop ------------------------------------------------------------------------


def uniforms_of(torch_draws, position, size, scale, ratio):
    """Our 22 uniforms for the draws torchvision made (area fraction, aspect ratio per attempt;
    randint positions), so both rules see the same numbers."""
    u = np.full(22, 0.5)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for k, (fraction, aspect) in enumerate(torch_draws):
        u[k] = (fraction - scale[0]) / (scale[1] - scale[0])
        u[10 + k] = (math.log(aspect) - log_lo) / (log_hi - log_lo)
    return u


@pytest.mark.parametrize(("image", "scale", "ratio", "draws", "position", "box"), RRC_BOXES)
def test_box_rule_equals_torchvision_for_the_same_draws(image, scale, ratio, draws, position, box):
    h, w = image
    u = uniforms_of(draws, position, (h, w), scale, ratio)
    t = RandomResizedCrop(8, scale=scale, ratio=ratio)
    found = t.boxes(u[None], np.array([h]), np.array([w]))
    _, _, bh, bw = box
    if position is not None:  # randint(0, n) gave position: our floor(u * n) gives it for u in its cell
        u[20], u[21] = (position[0] + 0.5) / (h - bh + 1), (position[1] + 0.5) / (w - bw + 1)
        found = t.boxes(u[None], np.array([h]), np.array([w]))
    assert tuple(int(v[0]) for v in found) == box


def reference_box(u, height, width, scale, ratio):
    """The rule written out for one image, as torchvision's documentation states it."""
    for k in range(10):
        area = height * width * (scale[0] + u[k] * (scale[1] - scale[0]))
        log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
        aspect = math.exp(log_lo + u[10 + k] * (log_hi - log_lo))
        w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < w <= width and 0 < h <= height:
            return (
                min(int(u[20] * (height - h + 1)), height - h),
                min(int(u[21] * (width - w + 1)), width - w),
                h,
                w,
            )
    in_ratio = width / height
    if in_ratio < min(ratio):  # max(1, ...): torchvision's rule can round a side to 0 here
        w, h = width, max(1, round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, max(1, round(height * max(ratio)))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


@settings(max_examples=80, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(1, 600), st.integers(1, 600)), min_size=1, max_size=6),
    scale=st.tuples(st.floats(0.0, 1.5), st.floats(0.01, 2.0)).map(sorted),
    ratio=st.tuples(st.floats(0.1, 4.0), st.floats(0.1, 4.0)).map(sorted),
    seed=st.integers(0, 2**32),
)
def test_boxes_follow_the_rule_and_stay_inside(sizes, scale, ratio, seed):
    t = RandomResizedCrop(4, scale=tuple(scale), ratio=tuple(ratio))
    heights, widths = (np.array(v) for v in zip(*sizes, strict=True))
    u = t.draw(np.random.default_rng(seed), len(sizes))
    boxes = t.boxes(u, heights, widths)
    for i, (h, w) in enumerate(sizes):
        box = tuple(int(b[i]) for b in boxes)
        assert box == reference_box(u[i], h, w, scale, ratio)
        top, left, bh, bw = box
        assert 0 <= top <= top + bh <= h
        assert 0 <= left <= left + bw <= w
        assert bh >= 1
        assert bw >= 1


def test_box_area_and_aspect_are_drawn_from_scale_and_ratio():
    t = RandomResizedCrop(8)
    u = t.draw(np.random.default_rng(3), 4000)
    boxes = t.boxes(u, np.full(4000, 375), np.full(4000, 500))
    area = boxes.height * boxes.width / (375 * 500)
    aspect = boxes.width / boxes.height
    assert area.min() >= 0.08 - 0.01
    assert area.max() <= 1.0
    assert aspect.min() >= 0.75 - 0.02
    assert aspect.max() <= 4 / 3 + 0.02
    # Positions are uniform: the box's centre spreads over the whole image.
    centre = (boxes.left + boxes.width / 2) / 500
    assert centre.min() < 0.2
    assert centre.max() > 0.8


def test_random_resized_crop_batch_list_and_sample_agree():
    images = photos([(375, 500), (333, 500), (500, 375), (64, 48)])
    t = RandomResizedCrop((32, 40))
    u = t.draw(np.random.default_rng(5), 4)
    out = t.apply(images, u)
    assert out.shape == (4, 3, 32, 40)
    assert out.dtype == np.uint8
    for i, image in enumerate(images):
        np.testing.assert_array_equal(t.apply(image[None], u[i : i + 1])[0], out[i])
        box = t.boxes(u[i : i + 1], np.array([image.shape[1]]), np.array([image.shape[2]]))
        np.testing.assert_array_equal(resized_crops([image], box, (32, 40))[0], out[i])
    same = np.stack([images[0]] * 3)
    np.testing.assert_array_equal(t(same, np.random.default_rng(1)), t(list(same), np.random.default_rng(1)))
    assert t(images[0], np.random.default_rng(1)).shape == (3, 32, 40)


def test_random_resized_crop_in_a_loader_is_deterministic_per_batch():
    images = np.stack(photos([(48, 64)] * 12))
    ds = TensorDataset(images, np.arange(12))
    augment = Compose([RandomResizedCrop(16), RandomHorizontalFlip(), ToFloat()])
    runs = [
        [x for x, _ in DataLoader(ds, batch_size=4, shuffle=True, seed=7, batch_transform=augment)]
        for _ in range(2)
    ]
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)
    assert runs[0][0].shape == (4, 3, 16, 16)
    assert not np.array_equal(runs[0][0][0], runs[0][0][1])


# ---- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: Resize(224.0),
            TypeError,
            r"Resize size must be an int or a sequence \(h, w\) of ints, got float 224.0",
        ),
        (lambda: Resize(None), ValueError, r"Resize\(size=None\) needs max_size="),
        (lambda: Resize((224, 224), max_size=300), ValueError, "max_size applies to an int size"),
        (lambda: Resize(224, max_size=224), ValueError, "max_size=224 must be larger than size=224"),
        (
            lambda: Resize(224, interpolation="lanczos"),
            ValueError,
            "interpolation must be 'nearest', 'bilinear' or 'bicubic'",
        ),
        (
            lambda: Resize(224, antialias=False),
            ValueError,
            r"antialias=False\) is not available: resampling uses Pillow",
        ),
        (lambda: Resize(224, antialias=None), TypeError, "Resize antialias must be True or False"),
        (lambda: CenterCrop(0), ValueError, "CenterCrop size must be a positive int, got 0"),
        (lambda: CenterCrop((224, 224, 3)), ValueError, "got 3 values"),
        (
            lambda: RandomResizedCrop(224, scale=(1.0, 0.08)),
            ValueError,
            r"scale must be a pair \(lo, hi\) with lo <= hi",
        ),
        (lambda: RandomResizedCrop(224, scale=(0, 0)), ValueError, "must allow a positive area"),
        (lambda: RandomResizedCrop(224, ratio=(0, 1)), ValueError, "ratio must be a number > 0"),
        (lambda: RandomResizedCrop(224, ratio=(2, 1)), ValueError, "with lo <= hi"),
        (lambda: RandomResizedCrop(22.4), TypeError, "RandomResizedCrop size must be an int"),
    ],
)
def test_bad_arguments_name_the_argument_and_the_fix(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_accepts_torchvision_style_arguments():
    class InterpolationMode:  # what torchvision's enum looks like to us: .value is the name
        value = "bicubic"

    assert Resize([32], interpolation=InterpolationMode()).interpolation == "bicubic"
    assert Resize([32]).size == 32
    assert Resize(np.int64(32)).size == 32
    assert Resize([24, 32]).size == (24, 32)
    assert RandomResizedCrop([32], scale=(np.float32(0.5), 1)).size == (32, 32)
    assert RandomResizedCrop(32, interpolation="BILINEAR").interpolation == "bilinear"


def test_images_of_other_dtypes_are_refused_with_the_fix():
    with pytest.raises(
        TypeError, match=r"resizing takes uint8 or float32 images, got int16; convert them first"
    ):
        Resize((4, 4))(np.zeros((3, 8, 8), np.int16))
    with pytest.raises(
        ValueError, match=r"one channel count and dtype: image 0 is \(3, ...\) uint8, image 1 is \(1, 8, 8\)"
    ):
        RandomResizedCrop(4)(
            [np.zeros((3, 8, 8), np.uint8), np.zeros((1, 8, 8), np.uint8)], np.random.default_rng(0)
        )
    with pytest.raises(ValueError, match="CenterCrop needs images of one channel count and dtype"):
        CenterCrop(4)([np.zeros((3, 8, 8), np.uint8), np.zeros((3, 8, 8), np.float32)])


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), min_size=1, max_size=5),
    out=st.tuples(st.integers(1, 24), st.integers(1, 24)),
    p=st.sampled_from([0.0, 0.5, 1.0]),
    as_list=st.booleans(),
    float32=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_fused_resized_crop_and_flip_equal_the_two_steps(sizes, out, p, as_list, float32, seed):
    images = photos(sizes if as_list else sizes[:1] * len(sizes), seed=seed % 1000)
    if float32:
        images = [x.astype(np.float32) / 255 for x in images]
    batch = images if as_list else np.stack(images)
    steps = [RandomResizedCrop(out, scale=(0.3, 1.0)), RandomHorizontalFlip(p)]
    composed = Compose(steps)
    assert type(composed.steps[0]) is ResizedCropThenFlip
    rng = np.random.default_rng(seed)
    expected = steps[1](steps[0](batch, rng), rng)
    got = composed(batch, np.random.default_rng(seed))
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8))


@pytest.mark.parametrize(
    ("transform", "shape"),
    [
        (Resize((4, 5)), (0, 3, 4, 5)),
        (Resize(4), (0, 3, 4, 6)),  # smaller edge 8 -> 4, the other 12 -> 6
        (CenterCrop(4), (0, 3, 4, 4)),
        (CenterCrop(10), (0, 3, 10, 10)),
        (RandomResizedCrop(4), (0, 3, 4, 4)),
        (Compose([RandomResizedCrop(4), RandomHorizontalFlip()]), (0, 3, 4, 4)),
    ],
)
def test_a_batch_of_zero_images_gives_zero_outputs_of_the_output_size(transform, shape):
    # torchvision 0.29.1 on torch.zeros(0, 3, 8, 12, dtype=torch.uint8) returns these shapes;
    # here each raised IndexError (the output size was read from image 0)
    out = transform(np.zeros((0, 3, 8, 12), np.uint8), rng=np.random.default_rng(0))
    assert out.shape == shape
    assert out.dtype == np.uint8
