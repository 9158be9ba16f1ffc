// Console niceties; every page works without them.
document.addEventListener("DOMContentLoaded", () => {
  // "Select all" ticks every checkbox of the named group (bulk approve).
  for (const box of document.querySelectorAll("[data-select-all]")) {
    box.addEventListener("change", () => {
      for (const item of document.querySelectorAll(`input[name="${box.dataset.selectAll}"]`)) {
        item.checked = box.checked;
      }
    });
  }
  // Confirm before destructive buttons (deactivate, revoke, rotate).
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
});
