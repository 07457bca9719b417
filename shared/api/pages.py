"""The small HTML pages of the extend link: self-contained (no script, no external asset), every value
escaped, never cached, never framed, no referrer sent (the URL carries the link's token)."""

from __future__ import annotations

import datetime as dt
import html

from fastapi.responses import HTMLResponse

from ..cleanup.links import LINK_PATH, ExtendLink
from ..clock import stamp
from ..errors import DockmasterError

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em;color:#222}"
    "h1{font-size:1.4em}button{font-size:1em;padding:.5em 1.2em}.refused{color:#a00}"
)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(text, status_code=status, headers=HEADERS)


def confirm(link: ExtendLink, token: str) -> HTMLResponse:
    """The GET's answer: what the link would do, and a button that does it (a POST of the same token).
    A link prefetcher (chat unfurling, a mail scanner) fetches this and changes nothing."""
    group, sub = html.escape(link.group), html.escape(link.subscription)
    return _page(
        f"Extend lab {link.group}?",
        f"<p>Lab <strong>{group}</strong> (subscription {sub}) is due for deletion after "
        f"<strong>{stamp(link.lab_expiry)}</strong>.</p>"
        f"<p>Extend it by {link.hours:g} hours? This link works once.</p>"
        f'<form method="post" action="{LINK_PATH}">'
        f'<input type="hidden" name="t" value="{html.escape(token, quote=True)}">'
        "<button type=submit>Extend</button></form>",
    )


def extended(link: ExtendLink, new: dt.datetime) -> HTMLResponse:
    return _page(
        f"Lab {link.group} extended",
        f"<p>Lab <strong>{html.escape(link.group)}</strong> now expires "
        f"<strong>{stamp(new)}</strong>. This link is used up; a new warning brings a new one.</p>",
    )


def refused(error: DockmasterError) -> HTMLResponse:
    return _page(
        "The lab was not extended",
        f'<p class="refused">{html.escape(error.message)}</p>'
        "<p>Nothing was changed by this request. The Dockmaster API "
        "(<code>POST /api/resource-groups/{name}/extend</code>) extends a lab with a function key.</p>",
        error.status,
    )
