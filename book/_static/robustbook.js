// robustbook: outputs that fit the text column (tests/browser_check.py measures it).
// - MathJax 3 does not break display equations into lines: one wider than the column is scaled
//   down to fit it (not below 60%).
// - A table wider than the column, even with its cells wrapped at spaces, may break inside words.
(function () {
  const MIN_SCALE = 0.6;
  function fitEquations() {
    document.querySelectorAll('mjx-container[display="true"]').forEach((el) => {
      el.style.fontSize = "";
      const box = el.parentElement ? el.parentElement.clientWidth : el.clientWidth;
      if (box > 0 && el.scrollWidth > box) {
        el.style.fontSize = Math.max(MIN_SCALE, (box - 2) / el.scrollWidth) * 100 + "%";
      }
    });
  }
  function fitTables() {
    document.querySelectorAll("article table").forEach((table) => {
      table.classList.remove("robustbook-squeeze");
      const box = table.parentElement ? table.parentElement.clientWidth : 0;
      if (box > 0 && table.scrollWidth > box + 1) table.classList.add("robustbook-squeeze");
    });
  }
  function whenTypeset(tries) {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      MathJax.startup.promise.then(fitEquations);
    } else if (tries > 0) {
      setTimeout(() => whenTypeset(tries - 1), 100);
    }
  }
  document.addEventListener("DOMContentLoaded", () => {
    fitTables();
    if (document.querySelector(".math")) whenTypeset(300);
  });
  let pending;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(() => { fitTables(); fitEquations(); }, 100);
  });
})();
