// Assay's only script besides htmx. Kept in a file so the Content-Security-Policy can
// forbid inline scripts.
(function () {
  "use strict";

  // Send the CSRF token with every request htmx makes (POSTs and polls alike).
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) {
      event.detail.headers["X-CSRFToken"] = meta.content;
    }
  });

  // A session that ended answers htmx with HX-Redirect to the login page, which htmx follows
  // itself. Should a 401 come without it, reload: the page itself then goes to the login page.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    if (xhr && xhr.status === 401 && !xhr.getResponseHeader("HX-Redirect")) {
      window.location.reload();
    }
  });

  // A message about a submission ("the scan is queued", "your appeal was submitted") is
  // over once a live badge reaches its verdict (the status fragment sends scan-finished).
  document.addEventListener("scan-finished", function () {
    document.querySelectorAll('.flash[data-until="scan-finished"]').forEach(function (flash) {
      flash.remove();
    });
    var flashes = document.querySelector(".flashes");
    if (flashes && !flashes.children.length) {
      flashes.remove();
    }
  });

  // Refuse a package over the form limit before the upload starts, with the server's words.
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("input[type=file][data-max-bytes]")) {
      return;
    }
    var limit = Number(input.dataset.maxBytes);
    var file = input.files && input.files[0];
    input.setCustomValidity(file && file.size > limit ? input.dataset.tooLarge : "");
    input.reportValidity();
  });
})();
