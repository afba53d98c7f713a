// The order page while an online payment is awaited: asks the server every few seconds how the
// order stands and, once it is paid (or cancelled), shows the new status and takes the QR code
// away — the customer paid on their phone, so this page follows without a reload.
(function () {
  var pay = document.getElementById("pay");
  var status = document.getElementById("order-status");
  if (!pay || !status) return;
  var url = pay.getAttribute("data-status-url");
  function check() {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (o) {
        if (o && (o.payment !== "pending" || o.cancelled)) {
          status.textContent = o.status;
          status.setAttribute("data-payment", o.payment);
          pay.remove();
          // An order one of the shop's apps sent: back to the app, which shows the rest.
          if (o.return_url) window.location.assign(o.return_url);
          return;
        }
        setTimeout(check, 2000);
      })
      .catch(function () { setTimeout(check, 5000); });
  }
  setTimeout(check, 2000);
})();
