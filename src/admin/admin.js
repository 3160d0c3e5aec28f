// scimgate admin page: copy buttons and confirmation dialogs. Everything works without this
// file (the revoke button then leads to a confirmation page); it only makes it smoother.
"use strict";

document.addEventListener("click", (ev) => {
  const target = ev.target instanceof Element ? ev.target : null;
  if (!target) return;

  const copy = target.closest("[data-copy]");
  if (copy) {
    const source = document.getElementById(copy.dataset.copy);
    const value = source ? source.textContent.trim() : "";
    const done = () => { copy.textContent = "Copied"; };
    if (navigator.clipboard && value) {
      navigator.clipboard.writeText(value).then(done, () => selectText(source));
    } else if (source) {
      selectText(source);
    }
    return;
  }

  const opener = target.closest("[data-dialog]");
  if (opener) {
    const dialog = document.getElementById(opener.dataset.dialog);
    if (dialog && typeof dialog.showModal === "function") {
      ev.preventDefault();
      dialog.showModal();
    }
    return;
  }

  const closer = target.closest("[data-close]");
  if (closer && closer.tagName === "A") {
    const dialog = closer.closest("dialog");
    if (dialog) {
      ev.preventDefault();
      dialog.close();
    }
  }
});

// Lets the user press Ctrl+C when the clipboard API is unavailable.
function selectText(el) {
  const range = document.createRange();
  range.selectNodeContents(el);
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
}

// A dialog rendered open by the server (the new key) becomes modal, so it cannot be missed.
for (const dialog of document.querySelectorAll("dialog[data-modal][open]")) {
  if (typeof dialog.showModal === "function") {
    dialog.close();
    dialog.showModal();
  }
}
