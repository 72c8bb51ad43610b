"""Which parsed phone numbers we take: the valid ones, and Ofcom's ranges kept for drama.

Why the exception: Ofcom reserves 07700 900000 to 900999 and 01632 960000 to 960999 for TV, film and
examples, so they are what dealers' staff, trainers and testers type when they try the widget.
``phonenumbers`` calls them invalid (nobody can be rung on them); refusing them would make a
demo lead impossible with the numbers people are told to use. (The other reserved ranges,
020 7946 0xxx and the like, are valid numbering and already pass.)
"""

from __future__ import annotations

import phonenumbers

#: (country code, national number prefix, national number length) of each reserved range.
_RESERVED_FOR_DRAMA = ((44, "7700900", 10), (44, "1632960", 10))


def reserved_for_drama(number: phonenumbers.PhoneNumber) -> bool:
    national = str(number.national_number)
    return any(
        number.country_code == code and len(national) == size and national.startswith(prefix)
        for code, prefix, size in _RESERVED_FOR_DRAMA
    )


def usable(number: phonenumbers.PhoneNumber) -> bool:
    """Valid for its region, or a number reserved for drama (see the module's docstring)."""
    return phonenumbers.is_valid_number(number) or reserved_for_drama(number)
