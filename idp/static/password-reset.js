// The reset link carries its code in the fragment (#...), which the browser never sends to a server,
// so no access log records it. Clear it from the address bar and history, then send it by POST in
// the form of templates/account_reset_code.html (which a patron without JavaScript fills by hand).
(function () {
  var code = window.location.hash.slice(1);
  if (!code) {
    return;
  }
  history.replaceState(null, "", window.location.pathname + window.location.search);
  var form = document.getElementById("reset-code-form");
  if (form) {
    form.elements.code.value = decodeURIComponent(code);
    form.submit();
  }
})();
