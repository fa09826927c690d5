"""My account: what the patron has agreed to share, and with whom; each agreement revocable."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from idp import relying_parties
from idp.errors import NotFound
from idp.claims import releases_for
from idp.web import services
from idp.web.facts import in_words

bp = Blueprint("account", __name__, url_prefix="/account")
HISTORY = 50  # the newest releases shown; the log itself keeps every one


def _patron_id() -> int | None:
    return session.get("patron_id")


@bp.get("/services")
def shared() -> ResponseReturnValue:
    patron_id = _patron_id()
    if patron_id is None:
        return redirect(url_for("login.login_form", next=request.full_path), 303)
    consents = services().oidc.grants.consents(patron_id)
    rows = []
    with services().registry("web") as reg:
        for client_id, names in sorted(consents.items()):
            try:
                name = relying_parties.get(reg, client_id).name
            except NotFound:
                continue
            rows.append({"client_id": client_id, "name": name, "facts": [in_words(n) for n in names]})
        history = releases_for(reg, patron_id, limit=HISTORY)
    return render_template("account_services.html", rows=sorted(rows, key=lambda r: r["name"]), history=history)


@bp.post("/services/<client_id>/revoke")
def revoke(client_id: str) -> ResponseReturnValue:
    patron_id = _patron_id()
    if patron_id is None:
        return redirect(url_for("login.login_form"), 303)
    services().oidc.grants.revoke_consent(patron_id, client_id)
    with services().registry("web") as reg:
        reg.audit("consent.revoke", patron_id=patron_id, client_id=client_id[:64])
    return redirect(url_for("account.shared"), 303)
