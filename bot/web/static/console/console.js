// The staff console's charts (Chart.js, vendored) from the JSON data blocks beside each canvas; no inline script.
// A drawn chart's canvas gets data-rendered="1" (tests and screenshots wait for it); animations are off.
(function () {
  "use strict";
  var COLOURS = ["#0b5cad", "#2e7d32", "#e08a00", "#b3261e", "#6a3d9a", "#00838f", "#8d6e63", "#5b6673",
                 "#c2185b", "#7cb342"];
  var STATUS = {sent: "已送达", failed: "失败", unreachable: "无法送达", pending: "待发送", cancelled: "已取消"};

  function data(canvas) {
    var block = document.getElementById(canvas.dataset.source);
    return block ? JSON.parse(block.textContent) : null;
  }

  function stacked(labels, series) {
    return {type: "bar", data: {labels: labels, datasets: series.map(function (s, i) {
      return {label: s[0], data: s[1], backgroundColor: COLOURS[i % COLOURS.length]};
    })}, options: {animation: false, responsive: true, maintainAspectRatio: false,
      scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true, ticks: {precision: 0}}}}};
  }

  var KINDS = {
    weekly: function (d) {
      return stacked(d.weeks, Object.keys(d.series).map(function (k) { return [k, d.series[k]]; }));
    },
    reach: function (d) {
      var routes = Object.keys(d);
      var statuses = ["sent", "pending", "unreachable", "failed", "cancelled"];
      return stacked(routes, statuses.map(function (s) {
        return [STATUS[s], routes.map(function (r) { return d[r][s] || 0; })];
      }));
    },
    quiz: function (d) {
      var first = d[0] || {townships: []};
      return {type: "bar", data: {labels: first.townships.map(function (t) { return t.name; }),
        datasets: d.map(function (c, i) {
          return {label: c.campaign, backgroundColor: COLOURS[i % COLOURS.length],
                  data: c.townships.map(function (t) { return t.rate === null ? 0 : Math.round(t.rate * 1000) / 10; })};
        })}, options: {animation: false, responsive: true, maintainAspectRatio: false,
        scales: {y: {beginAtZero: true, title: {display: true, text: "参与率 %"}}}}};
    },
    bars: function (d) {
      return {type: "bar", data: {labels: d.labels, datasets: [{label: d.label, data: d.values,
        backgroundColor: COLOURS[0]}]}, options: {animation: false, responsive: true, maintainAspectRatio: false,
        indexAxis: d.horizontal ? "y" : "x", scales: {y: {beginAtZero: true}}}};
    }
  };

  function draw(root) {
    if (typeof Chart === "undefined") { return; }
    root.querySelectorAll("canvas.chart").forEach(function (canvas) {
      if (canvas.dataset.rendered) { return; }
      var d = data(canvas), make = KINDS[canvas.dataset.kind];
      if (d === null || !make) { return; }
      new Chart(canvas, make(d));
      canvas.dataset.rendered = "1";
    });
  }

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSettle", function (event) { draw(event.target); });
  // confirm before a button marked data-confirm submits its form
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) { event.preventDefault(); }
  });
})();
