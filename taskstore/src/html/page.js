// The page works without this; it adds a bar's details on hover and focus, and opens a
// task's row when a bar or link leads to it.
(function () {
  "use strict";
  var tip = document.getElementById("tip");
  function seconds(ms) {
    ms = Number(ms);
    return ms < 1000 ? ms + " ms" : ms < 60000 ? (ms / 1000).toFixed(1) + " s" : Math.floor(ms / 60000) + " min " + Math.round(ms / 1000 % 60) + " s";
  }
  function show(bar) {
    if (!tip) return;
    var row = document.getElementById("t" + bar.dataset.task);
    var subject = row && row.querySelector(".subj");
    var lines = ["#" + bar.dataset.task + " " + (subject ? subject.textContent : ""),
      "attempt " + bar.dataset.attempt + " by " + bar.dataset.worker + ": " + bar.dataset.outcome,
      "took " + seconds(bar.dataset.ms) + (bar.dataset.exit !== undefined ? ", exit code " + bar.dataset.exit : "")];
    if (row && row.dataset.log) lines.push(row.dataset.log);
    tip.textContent = lines.join("\n");
    var r = bar.getBoundingClientRect();
    tip.hidden = false;
    tip.style.left = Math.max(4, Math.min(r.left, window.innerWidth - tip.offsetWidth - 4)) + "px";
    tip.style.top = (r.bottom + 6 + tip.offsetHeight > window.innerHeight ? r.top - tip.offsetHeight - 6 : r.bottom + 6) + "px";
  }
  function hide() { if (tip) tip.hidden = true; }
  document.addEventListener("mouseover", function (e) { var b = e.target.closest && e.target.closest(".bar"); if (b) show(b); else hide(); });
  document.addEventListener("focusin", function (e) { if (e.target.classList.contains("bar")) show(e.target); else hide(); });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") hide(); });
  // A folded row (a completed task of a big run) gets its links when it opens.
  document.addEventListener("toggle", function (e) {
    var row = e.target;
    if (!row.open || !row.classList || !row.classList.contains("row") || row.querySelector(".more")) return;
    var more = document.createElement("div");
    more.className = "more";
    var p = document.createElement("p");
    (row.dataset.b ? row.dataset.b.split(" ") : []).forEach(function (b, i) {
      if (i === 0) p.append("waits for ");
      var a = document.createElement("a");
      a.href = "#t" + b;
      a.textContent = "#" + b;
      p.append(a, " ");
    });
    p.append("Details are folded in a page this big: task-list " + row.id.slice(1) + " --format json has them.");
    more.append(p);
    row.append(more);
  }, true);
  function open() {
    var row = location.hash && document.getElementById(location.hash.slice(1));
    if (row && row.tagName === "DETAILS") { row.open = true; row.scrollIntoView({ block: "center" }); }
  }
  window.addEventListener("hashchange", open);
  open();
  document.documentElement.dataset.ready = String(Math.round(performance.now()));
})();
