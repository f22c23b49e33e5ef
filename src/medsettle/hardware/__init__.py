"""Stand-ins for the counter's physical devices: virtual social security cards and PSAMs that plug into a
real pcscd through vpcd, and the bring-up of that PC/SC stack (docs/card.md).

- :mod:`.keys`    the SM4/SM3 key scheme (national root → region issuing key → card key) and the digest
- :mod:`.card`    the card's operating system: application SSSE, EF05/EF06, PIN, challenge, authenticate
- :mod:`.psam`    the terminal's secure access module (reader slot 01) that checks a card's answer
- :mod:`.vpcd`    one reader slot: a card's TCP link to vpcd, with the fault modes tests switch on
- :mod:`.stack`   a private pcscd with one reader entry (card slot + PSAM slot) per counter
- :mod:`.daemon`  the same stack as a background process for ``medsettle hardware up/down``
"""
