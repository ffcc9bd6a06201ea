// Gatehouse passkey ceremonies. Each form with `data-options` gets its options from the
// server (a CSRF-checked POST of the form), runs navigator.credentials, puts the answer in the
// hidden `credential` field and submits the form as usual. The server checks everything.
"use strict";
(function () {
  if (!window.PublicKeyCredential) {
    return;
  }
  function b64uToBuf(s) {
    var b = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    var out = new Uint8Array(b.length);
    for (var i = 0; i < b.length; i++) {
      out[i] = b.charCodeAt(i);
    }
    return out.buffer;
  }
  function bufToB64u(buf) {
    var bytes = new Uint8Array(buf);
    var s = "";
    for (var i = 0; i < bytes.length; i++) {
      s += String.fromCharCode(bytes[i]);
    }
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function descriptors(list) {
    return (list || []).map(function (c) {
      return Object.assign({}, c, { id: b64uToBuf(c.id) });
    });
  }
  function creationOptions(o) {
    var pk = Object.assign({}, o);
    pk.challenge = b64uToBuf(o.challenge);
    pk.user = Object.assign({}, o.user, { id: b64uToBuf(o.user.id) });
    pk.excludeCredentials = descriptors(o.excludeCredentials);
    return pk;
  }
  function requestOptions(o) {
    var pk = Object.assign({}, o);
    pk.challenge = b64uToBuf(o.challenge);
    pk.allowCredentials = descriptors(o.allowCredentials);
    return pk;
  }
  function credentialJson(c) {
    var r = c.response;
    var out = {
      id: c.id,
      rawId: bufToB64u(c.rawId),
      type: c.type,
      authenticatorAttachment: c.authenticatorAttachment || null,
      clientExtensionResults: c.getClientExtensionResults(),
      response: { clientDataJSON: bufToB64u(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = bufToB64u(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
      if (r.getAuthenticatorData) {
        out.response.authenticatorData = bufToB64u(r.getAuthenticatorData());
      }
      if (r.getPublicKey && r.getPublicKey()) {
        out.response.publicKey = bufToB64u(r.getPublicKey());
      }
      if (r.getPublicKeyAlgorithm) {
        out.response.publicKeyAlgorithm = r.getPublicKeyAlgorithm();
      }
    } else {
      out.response.authenticatorData = bufToB64u(r.authenticatorData);
      out.response.signature = bufToB64u(r.signature);
      out.response.userHandle = r.userHandle ? bufToB64u(r.userHandle) : null;
    }
    return JSON.stringify(out);
  }
  function showError(form, text) {
    var p = form.querySelector("[data-passkey-error]");
    if (p) {
      p.textContent = text;
      p.hidden = false;
    }
  }
  function fetchOptions(form) {
    var body = new URLSearchParams(new FormData(form));
    body.delete("credential");
    return fetch(form.dataset.options, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    }).then(function (resp) {
      return resp.json().then(function (j) {
        if (!resp.ok) {
          throw new Error(j.message || j.error || "The server refused to start.");
        }
        return j;
      });
    });
  }
  var conditional = null;
  function run(form, mediation) {
    return fetchOptions(form).then(function (o) {
      var call;
      if (form.dataset.register) {
        call = navigator.credentials.create({ publicKey: creationOptions(o) });
      } else {
        var args = { publicKey: requestOptions(o) };
        if (mediation) {
          conditional = new AbortController();
          args.mediation = mediation;
          args.signal = conditional.signal;
        }
        call = navigator.credentials.get(args);
      }
      return call.then(function (c) {
        if (!c) {
          throw new Error("No passkey was chosen.");
        }
        form.elements.credential.value = credentialJson(c);
        form.submit();
      });
    });
  }
  document.querySelectorAll("form[data-options]").forEach(function (form) {
    var button = form.querySelector("button[type=button]");
    if (button) {
      button.addEventListener("click", function () {
        if (conditional) {
          conditional.abort();
          conditional = null;
        }
        button.disabled = true;
        run(form, null).catch(function (e) {
          button.disabled = false;
          showError(form, e && e.message ? e.message : "The passkey step did not finish.");
        });
      });
    }
    // Conditional mediation: the browser offers passkeys in the username field's autofill.
    if (form.dataset.conditional && PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
        if (ok && !conditional) {
          run(form, "conditional").catch(function () {});
        }
      });
    }
  });
})();
