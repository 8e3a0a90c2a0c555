/* retryq dashboard: local times on hover, and charts drawn by Chart.js from the statistics embedded in the page.
   Nothing is counted here: every number comes from the JSON of `retryq stats --json`. */
(function () {
  "use strict";

  var COLORS = { resolved: "#1e7b4f", persistent: "#b42318", open: "#1d5fc4", cancelled: "#6b7480" };
  // Greens for resolutions, one per retry; each keeps a 3:1 contrast against the white background.
  var RETRY_COLORS = ["#1e7b4f", "#3f9a6c", "#5c8f74", "#0f766e", "#4d7c0f"];
  var NAMES = { resolved: "Resolved", persistent: "Persistent", open: "Open", cancelled: "Cancelled" };

  function showLocalTimes() {
    var stamps = document.querySelectorAll("time[datetime]");
    for (var i = 0; i < stamps.length; i++) {
      var moment = new Date(stamps[i].getAttribute("datetime"));
      if (!isNaN(moment.getTime())) {
        stamps[i].title = moment.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" }) + " (local time)";
      }
    }
  }

  // As retryq prints durations: 1h30m, 45s, 0s.
  function duration(seconds) {
    var total = Math.trunc(seconds);
    var sign = total < 0 ? "-" : "";
    total = Math.abs(total);
    var parts = [[Math.floor(total / 86400), "d"], [Math.floor((total % 86400) / 3600), "h"],
      [Math.floor((total % 3600) / 60), "m"], [total % 60, "s"]];
    var text = parts.filter(function (part) { return part[0]; })
      .map(function (part) { return part[0] + part[1]; }).join("");
    return sign + (text || "0s");
  }

  function chains(count) {
    return count + (count === 1 ? " chain" : " chains");
  }

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (canvas) {
      new Chart(canvas, config);
    }
  }

  function resolutionChart(stats) {
    var labels = [], counts = [], shares = [], colors = [];
    Object.keys(stats.resolvedByAttempt).forEach(function (attempt, index) {
      labels.push("Resolved at retry " + attempt);
      counts.push(stats.resolvedByAttempt[attempt].count);
      shares.push(stats.resolvedByAttempt[attempt].percent);
      colors.push(RETRY_COLORS[Math.min(index, RETRY_COLORS.length - 1)]);
    });
    [["persistent", "Persistent (failed)"], ["open", "Still open"], ["cancelled", "Cancelled"]].forEach(function (row) {
      labels.push(row[1]);
      counts.push(stats[row[0]]);
      shares.push(stats[row[0] + "Percent"]);
      colors.push(COLORS[row[0]]);
    });
    draw("chart-resolution", {
      type: "bar",
      data: { labels: labels, datasets: [{ label: "Chains", data: counts, backgroundColor: colors, borderRadius: 3 }] },
      options: {
        indexAxis: "y",
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: function (item) {
            return chains(item.raw) + " (" + shares[item.dataIndex].toFixed(1) + "%)";
          } } }
        },
        scales: {
          x: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "chains" } },
          y: { grid: { display: false } }
        }
      }
    });
  }

  function delayChart(stats) {
    var bins = stats.delayHistogram;
    if (!bins.length) {
      return;
    }
    var width = bins[0].toSeconds - bins[0].fromSeconds;
    var datasets = [{
      type: "bar",
      label: "Resolved chains",
      data: bins.map(function (bin) { return { x: (bin.fromSeconds + bin.toSeconds) / 2, y: bin.count }; }),
      backgroundColor: "#3f9a6c",
      borderColor: "#ffffff",
      borderWidth: 1,
      barPercentage: 1,
      categoryPercentage: 1,
      grouped: false,
      order: 1  // Chart.js draws lower orders on top: the marks (order 0) over the bars
    }];
    // Vertical lines on a hidden 0..1 axis: they span the chart whatever the counts.
    // Their key is the text above the chart, which carries the same values.
    [["mean", "#c2410c", []], ["median", "#6d28d9", [6, 4]], ["max", "#111827", [2, 3]]].forEach(function (mark) {
      var value = stats.delaySeconds[mark[0]];
      if (value !== null) {
        datasets.push({
          type: "line",
          label: mark[0] + " " + duration(value),
          data: [{ x: value, y: 0 }, { x: value, y: 1 }],
          yAxisID: "marks",
          borderColor: mark[1],
          backgroundColor: mark[1],
          borderDash: mark[2],
          borderWidth: 2,
          pointRadius: 0,
          pointHitRadius: 0
        });
      }
    });
    draw("chart-delay", {
      data: { datasets: datasets },
      options: {
        plugins: {
          legend: { display: false },
          tooltip: {
            filter: function (item) { return item.dataset.type === "bar"; },
            callbacks: {
              title: function (items) {
                var bin = bins[items[0].dataIndex];
                return duration(bin.fromSeconds) + " to " + duration(bin.toSeconds);
              },
              label: function (item) { return chains(item.raw.y); }
            }
          }
        },
        scales: {
          x: {
            type: "linear",
            offset: false,
            min: bins[0].fromSeconds,
            max: bins[bins.length - 1].toSeconds,
            ticks: { stepSize: width, maxRotation: 0, autoSkipPadding: 8, callback: function (value) { return duration(value); } },
            title: { display: true, text: "time from detection to resolution" },
            grid: { display: false }
          },
          y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "chains" } },
          marks: { display: false, min: 0, max: 1 }
        }
      }
    });
  }

  function dayChart(stats) {
    var days = stats.byDay;
    draw("chart-days", {
      type: "bar",
      data: {
        labels: days.map(function (day) { return day.date; }),
        datasets: ["resolved", "persistent", "open", "cancelled"].map(function (key) {
          return { label: NAMES[key], data: days.map(function (day) { return day[key]; }),
            backgroundColor: COLORS[key], stack: "chains", maxBarThickness: 56 };
        })
      },
      options: {
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom" } },
        scales: {
          x: { stacked: true, grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
          y: { stacked: true, beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "chains" } }
        }
      }
    });
  }

  // An instant as the page's tables show it: 2025-12-19 11:00 (UTC).
  function stamp(milliseconds) {
    return new Date(milliseconds).toISOString().slice(0, 16).replace("T", " ");
  }

  // Upstream incidents on a time line, one row per workflow: from when each opened to when it closed
  // (an open one, to when the page was made).
  function incidentChart(stats) {
    var upstream = stats.incidents;
    if (!upstream || !(upstream.open.length + upstream.closed.length)) {
      return;
    }
    var canvas = document.getElementById("chart-incidents");
    var end = canvas ? Date.parse(canvas.getAttribute("data-now")) : Date.now();
    var workflows = [];
    var start = end;
    upstream.closed.concat(upstream.open).forEach(function (each) {
      if (workflows.indexOf(each.workflow) < 0) {
        workflows.push(each.workflow);
      }
      start = Math.min(start, Date.parse(each.openedAt));
    });
    var margin = Math.max((end - start) / 20, 60000);  // a little room on each side, a minute at least
    function bars(list) {
      return list.map(function (each) {
        var closed = each.closedAt === null ? end : Date.parse(each.closedAt);
        return { x: [Date.parse(each.openedAt), closed], y: each.workflow, id: each.id };
      });
    }
    draw("chart-incidents", {
      type: "bar",
      data: {
        labels: workflows,
        datasets: [
          { label: "Closed", data: bars(upstream.closed), backgroundColor: COLORS.cancelled, grouped: false, minBarLength: 4, maxBarThickness: 28 },
          { label: "Open", data: bars(upstream.open), backgroundColor: COLORS.persistent, grouped: false, minBarLength: 4, maxBarThickness: 28 }
        ]
      },
      options: {
        indexAxis: "y",
        plugins: {
          legend: { position: "bottom" },
          tooltip: { callbacks: { label: function (item) {
            var span = item.raw.x;
            return item.raw.id + ": " + stamp(span[0]) + " to " + stamp(span[1]) + " UTC (" + duration((span[1] - span[0]) / 1000) + ")";
          } } }
        },
        scales: {
          x: { type: "linear", beginAtZero: false, min: start - margin, max: end + margin,
            ticks: { maxRotation: 0, autoSkipPadding: 16, callback: function (value) { return stamp(value); } },
            title: { display: true, text: "UTC" } },
          y: { grid: { display: false } }
        }
      }
    });
  }

  showLocalTimes();
  if (typeof Chart === "undefined") {
    return;
  }
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.color = "#3d4856";
  Chart.defaults.font.family = window.getComputedStyle(document.body).fontFamily;
  var stats = JSON.parse(document.getElementById("retryq-stats").textContent);
  resolutionChart(stats);
  delayChart(stats);
  incidentChart(stats);
  dayChart(stats);
})();
