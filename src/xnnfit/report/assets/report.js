// Hover a node for its op, layer, source and cause; click a cause to highlight its nodes. No network, no libraries.
(function () {
  var tip = document.getElementById("tip");
  document.querySelectorAll("svg .node").forEach(function (el) {
    el.addEventListener("mousemove", function (ev) {
      tip.textContent = el.getAttribute("data-tip");
      tip.style.display = "block";
      tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - 440) + "px";
      tip.style.top = ev.clientY + 14 + "px";
    });
    el.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  });
  var current = null;
  document.querySelectorAll("[data-highlight]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var cause = btn.getAttribute("data-highlight");
      current = current === cause ? null : cause;
      document.querySelectorAll("[data-highlight]").forEach(function (b) {
        b.classList.toggle("on", b.getAttribute("data-highlight") === current);
      });
      document.querySelectorAll("svg .node").forEach(function (el) {
        var causes = (el.getAttribute("data-causes") || "").split(" ");
        el.classList.toggle("dim", current !== null && causes.indexOf(current) < 0);
      });
    });
  });
})();
