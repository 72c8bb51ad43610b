"""The privacy policy the demo publishes, so its pages' "privacy policy" links lead somewhere.

A real deployment publishes its own (`confide policy publish --file …`); this one says, in
plain words, what the demo's chat widget does with a visitor's data.
"""

from __future__ import annotations

VERSION = "demo-1"
TITLE = "Confide privacy policy (demo)"
TEXT = """\
Who we are
Confide runs the live chat on this dealership's website on the dealership's behalf. The
dealership decides what happens to your details (it is the controller); we process them only
on its instructions (we are its processor).

What we record while you browse
With your consent (or, on sites that say so, until you say no), the chat widget records
anonymous usage data: your approximate location (country, from a shortened IP address), your
browser, its version and operating system, where you came from, how long you stay and which
pages you view. Your browser gets an identifier for this website only; it is never linked to
other websites. If your browser sends Do Not Track or Global Privacy Control, we record none
of this, and the chat still works.

What you tell us in a chat
If you give your name, phone number, email or address in a chat, we attach it to that
conversation and to your visit. It is passed to the dealership as an enquiry only after you
agree in the chat, in writing. When you chat again later, your earlier conversations are shown
to the person answering you.

How long we keep it
At least three months, and no longer than three months after our contract with the
dealership ends (unless the law requires us to keep it for longer). Your details are stored
in the UK and the EU and protected by encryption; every access to them is recorded.

Your rights
You can ask for a copy of your data, for it to be corrected or deleted, or object to its use,
yourself or through someone you authorise. Use the "Your privacy" link in the chat window or
the dealership's privacy page; we check that the request comes from you and answer within
the time the law allows.
"""
