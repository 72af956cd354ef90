// Drag and drop onto the upload form (web/templates/jobs/new.html): a dropped file goes
// into the form's file field, which the form then posts as usual. Without this script the
// field alone works the same.
// A form that posts straight to S3 has a hidden field marked data-filename (the object's
// metadata): it gets the chosen or dropped file's name, percent-encoded (S3 keeps header
// text only; the app decodes it). Without this script the list is stored as "upload".
"use strict";
(function () {
  function setUp(form) {
    var input = form.querySelector('input[type="file"]');
    if (!input) {
      return;
    }
    var named = form.querySelector("input[data-filename]");
    function nameIt() {
      if (named) {
        var file = input.files && input.files[0];
        named.value = file ? encodeURIComponent(file.name) : "";
      }
    }
    input.addEventListener("change", nameIt);
    form.addEventListener("submit", nameIt);
    ["dragenter", "dragover"].forEach(function (name) {
      form.addEventListener(name, function (event) {
        event.preventDefault();
        form.classList.add("dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      form.addEventListener(name, function () {
        form.classList.remove("dragging");
      });
    });
    form.addEventListener("drop", function (event) {
      event.preventDefault();
      var files = event.dataTransfer && event.dataTransfer.files;
      if (!files || files.length !== 1) {
        return;
      }
      var transfer = new DataTransfer();
      transfer.items.add(files[0]);
      input.files = transfer.files;
      input.dispatchEvent(new Event("change", { bubbles: true }));
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-dropzone]").forEach(setUp);
  });
})();
