// Sealgate dashboard: progressive enhancement only. Every page works without this file; it adds
// a copy button for a key shown once and a confirmation before destructive forms. No eval, no
// inline handlers, no third-party code (the Content-Security-Policy allows only this origin).
"use strict";

document.addEventListener("click", function (event) {
  var button = event.target.closest("button.copy[data-copy]");
  if (!button) return;
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent).then(function () {
    button.textContent = "Copied";
  }, function () {
    button.textContent = "Copy failed: select the text";
  });
});

document.addEventListener("submit", function (event) {
  var button = event.submitter || event.target.querySelector("[data-confirm]");
  var question = button && button.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});
