// The hosted checkout page's script (checkout.html): a file, as the page's CSP allows no
// inline script.
(function () {
  "use strict";
  // The page names its payment id.
  var base = "/checkout/" + document.querySelector("main").getAttribute("data-payment-id");
  var $ = function (id) { return document.getElementById(id); };
  var TEXT = {
    pending: ["Demande envoyée", "Validez le paiement sur votre téléphone."],
    processing: ["Validation en attente", "Validez le paiement sur votre téléphone (code secret Mobile Money)."],
    awaiting_otp: ["Code requis", "Saisissez le code reçu par SMS."],
    completed: ["Paiement réussi", "Merci ! Vous pouvez fermer cette page."],
    refunded: ["Paiement remboursé", ""],
    failed: ["Paiement refusé", "Le paiement n'a pas abouti."],
    cancelled: ["Paiement annulé", ""],
    expired: ["Lien expiré", "Le délai de paiement est dépassé."]
  };
  var FAILURES = { insufficient_funds: "Solde insuffisant.", otp_attempts_exceeded: "Trop de codes erronés." };
  var timer = null;

  function money(n, cur) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, "\u202f") + " " + (cur === "XOF" || cur === "XAF" ? "FCFA" : cur);
  }
  function request(method, path, body) {
    return fetch(base + path, {
      method: method, headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined, cache: "no-store"
    }).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) { throw new Error((j.error && j.error.message) || "Erreur"); }
        return j;
      });
    });
  }
  var RETURNED = new URLSearchParams(window.location.search).get("stripe");
  function render(s) {
    if (s.redirect_url && s.status === "awaiting_payment") {
      // Back from the provider's page without paying: offer to go back, never loop there.
      if (RETURNED !== "cancel") { window.location.assign(s.redirect_url); return; }
      $("amount").textContent = money(s.amount, s.currency);
      $("status").hidden = false;
      $("status-title").textContent = "Paiement interrompu";
      $("status-text").textContent = "";
      var resume = document.createElement("a");
      resume.href = s.redirect_url; resume.textContent = "Reprendre le paiement par carte";
      $("status-text").appendChild(resume);
      clearTimeout(timer); timer = setTimeout(refresh, 3000);
      return;
    }
    $("amount").textContent = money(s.amount, s.currency);
    $("desc").textContent = s.description || "";
    // Whom the payer is paying, before they type a phone number.
    $("merchant").textContent = s.merchant_name || "";
    $("error").textContent = "";
    var choosing = s.status === "awaiting_payment";
    $("choose").hidden = !choosing;
    $("otp-form").hidden = s.status !== "awaiting_otp";
    if (choosing && !$("ops").children.length) {
      s.operators.forEach(function (op, i) {
        var label = document.createElement("label");
        var input = document.createElement("input");
        input.type = "radio"; input.name = "operator"; input.value = op.code; input.required = true;
        if (i === 0) { input.checked = true; }
        var span = document.createElement("span"); span.textContent = op.name;
        label.appendChild(input); label.appendChild(span); $("ops").appendChild(label);
      });
    }
    var text = TEXT[s.status];
    $("status").hidden = choosing || !text;
    if (text) {
      $("status-title").textContent = text[0];
      $("status-title").className = "big " + (s.status === "completed" ? "ok" : (["failed","cancelled","expired"].indexOf(s.status) >= 0 ? "ko" : ""));
      $("status-text").textContent = (s.status === "failed" && FAILURES[s.failure_code]) || text[1];
    }
    document.body.setAttribute("data-status", s.status);
    var open = ["pending", "processing", "awaiting_otp", "awaiting_payment"].indexOf(s.status) >= 0;
    clearTimeout(timer);
    if (open) { timer = setTimeout(refresh, 1000); }
  }
  function fail(e) { $("error").textContent = e.message; }
  function refresh() { request("GET", "/state").then(render, fail); }

  $("choose").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var op = document.querySelector("input[name=operator]:checked");
    $("pay").disabled = true;
    request("POST", "/select", { operator: op && op.value, phone: $("phone").value.replace(/\s/g, "") })
      .then(render, fail).then(function () { $("pay").disabled = false; });
  });
  $("otp-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("confirm").disabled = true;
    request("POST", "/otp", { otp: $("otp").value.trim() })
      .then(render, fail).then(function () { $("confirm").disabled = false; });
  });
  refresh();
})();
