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
})();
