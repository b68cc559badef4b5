/* Records uncaught errors in the data-js-errors attribute of the html element, so that a
 * test (or a reader with the inspector) sees at once that the page's own script broke. */
(function () {
  var errs = [];
  window.addEventListener("error", function (e) {
    errs.push(String(e.message || e));
    document.documentElement.setAttribute("data-js-errors", errs.join(" | "));
  });
})();
