// Passkeys (WebAuthn) for Yiren's account pages. The server sends webauthn-rs options with
// base64url fields; the browser wants ArrayBuffers, and the server wants base64url back.
(function () {
  "use strict";
  function b64uToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function bufToB64u(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function post(url, fields) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields)
    }).then(function (r) {
      return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || r.statusText); return j; });
    });
  }
  function show(el, msg) { if (el) { el.textContent = msg; } }

  function register(btn) {
    var status = document.getElementById(btn.dataset.status);
    var csrf = btn.dataset.csrf, nameInput = document.getElementById(btn.dataset.name);
    post("/account/passkeys/register/start", { _csrf: csrf }).then(function (start) {
      var o = start.options.publicKey;
      o.challenge = b64uToBuf(o.challenge);
      o.user.id = b64uToBuf(o.user.id);
      (o.excludeCredentials || []).forEach(function (c) { c.id = b64uToBuf(c.id); });
      return navigator.credentials.create({ publicKey: o }).then(function (cred) {
        var body = {
          id: cred.id, rawId: bufToB64u(cred.rawId), type: cred.type,
          response: {
            attestationObject: bufToB64u(cred.response.attestationObject),
            clientDataJSON: bufToB64u(cred.response.clientDataJSON)
          },
          extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
        };
        return post("/account/passkeys/register/finish", {
          _csrf: csrf, flow: start.flow, name: nameInput ? nameInput.value : "", credential: JSON.stringify(body)
        });
      });
    }).then(function (done) { window.location.assign(done.redirect); })
      .catch(function (e) { show(status, e.message || String(e)); });
  }

  function authenticate(btn) {
    var status = document.getElementById(btn.dataset.status);
    var csrf = btn.dataset.csrf, base = btn.dataset.endpoint;
    post(base + "/start", { _csrf: csrf }).then(function (start) {
      var o = start.options.publicKey;
      o.challenge = b64uToBuf(o.challenge);
      (o.allowCredentials || []).forEach(function (c) { c.id = b64uToBuf(c.id); });
      return navigator.credentials.get({ publicKey: o }).then(function (cred) {
        var r = cred.response;
        var body = {
          id: cred.id, rawId: bufToB64u(cred.rawId), type: cred.type,
          response: {
            authenticatorData: bufToB64u(r.authenticatorData),
            clientDataJSON: bufToB64u(r.clientDataJSON),
            signature: bufToB64u(r.signature),
            userHandle: r.userHandle ? bufToB64u(r.userHandle) : null
          },
          extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
        };
        return post(base + "/finish", { _csrf: csrf, flow: start.flow, next: btn.dataset.next || "", credential: JSON.stringify(body) });
      });
    }).then(function (done) { window.location.assign(done.redirect); })
      .catch(function (e) { show(status, e.message || String(e)); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var supported = !!(window.PublicKeyCredential && navigator.credentials);
    document.querySelectorAll("[data-passkey]").forEach(function (btn) {
      if (!supported) { btn.disabled = true; return; }
      btn.hidden = false;
      btn.addEventListener("click", function (ev) {
        ev.preventDefault();
        if (btn.dataset.passkey === "register") register(btn); else authenticate(btn);
      });
    });
  });
})();
