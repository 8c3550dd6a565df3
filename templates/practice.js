// The practice page's verdicts (tracer exercises --format practice). Every interval, every mistake's values
// and every carried-forward result was worked out by tracer's checker and is in #practice-data; this
// script only reads the numbers typed, compares them with those intervals exactly (decimal, BigInt) and
// combines the comparisons as the checker does (tracer/exercises/answers.py, StepChecker.judge).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("practice-data").textContent);
  var D = data.decimals;
  var byQ = {};
  data.quantities.forEach(function (q) { byQ[q.q] = q; });
  // The checker's order of judgements: the asked quantities, then the working, as the page lists them.
  var order = data.asked.concat(data.order.filter(function (q) { return data.asked.indexOf(q) < 0; }));
  var MINUS = /[\u2212\u2013\u2010\u2011]/g;
  var NUMBER = /^([+-]?)(\d+\.?\d*|\.\d+)(?:[eE]([+-]?\d+))?$/;
  var WRONG = ["wrong", "carried_forward", "too_few_digits"];

  // ---------------------------------------------------------------- exact decimal numbers

  function parse(text) {
    var m = NUMBER.exec(text.trim().replace(MINUS, "-"));
    if (!m) { return null; }
    var exponent = m[3] ? parseInt(m[3], 10) : 0;
    var dot = m[2].indexOf(".");
    var whole = dot < 0 ? m[2] : m[2].slice(0, dot);
    var fraction = dot < 0 ? "" : m[2].slice(dot + 1);
    var digits = whole + fraction;
    var scale = fraction.length - exponent;  // the value is digits × 10^-scale
    var significant = digits.replace(/^0+/, "").length;
    // As the checker refuses it: no power of ten beyond 300 either way.
    if (Math.abs(scale) > 300 || Math.abs(significant - 1 - scale) > 300) { return null; }
    var n = BigInt(digits || "0");
    return { n: m[1] === "-" ? -n : n, scale: scale, decimals: Math.max(0, scale) };
  }
  var parsed = {};
  function number(text) {
    if (!(text in parsed)) { parsed[text] = parse(text); }
    return parsed[text];
  }
  function compare(a, b) {
    var x = a.n, y = b.n, shift = a.scale - b.scale;
    if (shift > 0) { y = y * (10n ** BigInt(shift)); } else if (shift < 0) { x = x * (10n ** BigInt(-shift)); }
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  function inside(x, intervals) {
    return intervals.some(function (iv) { return compare(number(iv[0]), x) <= 0 && compare(x, number(iv[1])) <= 0; });
  }
  function sameNumbers(xs, texts) {
    return xs.length === texts.length && xs.every(function (x, i) { return compare(x, number(texts[i])) === 0; });
  }
  // A number is what a mistake gives at the decimals it is written with (at most the asked ones).
  function matches(xs, levels) {
    return levels !== null && xs.every(function (x, i) { return inside(x, levels[i][Math.min(x.decimals, D)]); });
  }
  function allInside(xs, intervals) {
    return xs.every(function (x, i) { return inside(x, intervals[i]); });
  }

  // ---------------------------------------------------------------- judging, as the checker does

  function read(q) {
    return Array.prototype.map.call(document.querySelectorAll('input[data-q="' + q + '"]'), function (input) {
      var text = input.value.trim();
      return text === "" ? undefined : parse(text);
    });
  }

  function judge() {
    var state = {};
    data.order.forEach(function (q) {
      var info = byQ[q], xs = read(q), marks = [];
      xs.forEach(function (x, i) {
        if (x === undefined) { marks.push("empty"); return; }
        if (x === null) { marks.push("unreadable"); return; }
        if (inside(x, info.truth[i][D])) { marks.push("right"); return; }
        marks.push(x.decimals < D && inside(x, info.truth[i][x.decimals]) ? "short" : "wrong");
      });
      var st = { numbers: xs, marks: marks, status: null, mistakes: [], from: [], unknown: false };
      if (xs.every(function (x) { return x; })) {
        st.right = marks.filter(function (k) { return k === "right"; }).length;
        if (st.right === xs.length) { st.status = "right"; }
        else if (marks.every(function (k) { return k === "right" || k === "short"; })) { st.status = "too_few_digits"; }
        else { st.status = "wrong"; }
      }
      state[q] = st;
    });
    order.forEach(function (q) {
      var st = state[q];
      if (st.status !== "wrong") { return; }
      var carried = carriedFrom(q, state);
      if (carried) {
        st.status = "carried_forward";
        st.from = carried;
        return;
      }
      st.unknown = carried === null;
      st.mistakes = explain(q, state);
    });
    return state;
  }

  // The other wrong answers, in the checker's order (parameters before the update are given, never carried).
  function wrongOthers(q, state) {
    return order.filter(function (u) {
      return u !== q && WRONG.indexOf(state[u].status) >= 0 && !byQ[u].parameter;
    });
  }

  // The earlier answers q follows from; false when it follows from none; null when the page cannot tell
  // (an earlier wrong answer that is no catalogued mistake's numbers: the checker reruns the step from it).
  function carriedFrom(q, state) {
    var wrong = wrongOthers(q, state);
    var at = data.order.indexOf(q);
    var before = wrong.filter(function (u) { return data.order.indexOf(u) < at; });
    if (!before.length) { return false; }  // answers computed after q cannot change it
    for (var k = 0; k < data.scenarios.length; k++) {
      var s = data.scenarios[k], f = s.follows[q];
      if (!f || f.from.length !== before.length) { continue; }
      if (!before.every(function (u) { return f.from.indexOf(u) >= 0 && sameNumbers(state[u].numbers, s.typed[u]); })) {
        continue;
      }
      if (!allInside(state[q].numbers, f.intervals)) { return false; }
      var needed = before.filter(function (p) { return !allInside(state[q].numbers, f.without[p]); });
      return needed.length ? wrong.filter(function (u) { return needed.indexOf(u) >= 0; }) : wrong;
    }
    return null;
  }

  // The catalogued mistakes whose numbers the student's are; those that would also have changed an answer
  // the student got right are left out (all of them are named if none is consistent).
  // The learning-rate mistake also comes at the rate the student's updated parameters suggest: the checker
  // worked it out for the updated parameters the catalogue's mistakes give.
  function catalogue(state) {
    var after = data.order.filter(function (u) { return /_after$/.test(u) && state[u].status; });
    var extra = [];
    data.rates.forEach(function (r) {
      var keys = Object.keys(r.when);
      if (keys.length === after.length && after.every(function (u) {
        return keys.indexOf(u) >= 0 && sameNumbers(state[u].numbers, r.when[u]);
      })) { extra = r.variants; }
    });
    return data.mistakes.concat(extra);
  }

  function explain(q, state) {
    var found = [], agrees = [], seen = {};
    catalogue(state).forEach(function (m) {
      if (!(q in m.values) || !matches(state[q].numbers, m.values[q])) { return; }
      if (m.key === "learning_rate" && found.some(function (f) { return f.key === m.key; })) { return; }
      var key = m.key + "\u0000" + m.says;
      if (seen[key]) { return; }
      seen[key] = true;
      found.push(m);
      agrees.push(order.every(function (j) {
        return state[j].status !== "right" || !(j in m.values) || matches(state[j].numbers, m.values[j]);
      }));
    });
    var consistent = found.filter(function (m, i) { return agrees[i]; });
    return consistent.length ? consistent : found;
  }

  // ---------------------------------------------------------------- showing it

  var WORDS = { right: "right", short: "not precise enough", wrong: "wrong", unreadable: "not a number", empty: "" };
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }

  function show() {
    var state = judge(), earned = 0, possible = 0;
    data.order.forEach(function (q) {
      var st = state[q], info = byQ[q];
      document.querySelectorAll('.mark[data-q="' + q + '"]').forEach(function (mark, i) {
        mark.className = "mark " + st.marks[i];
        mark.textContent = WORDS[st.marks[i]];
      });
      var box = document.querySelector('.quantity[data-q="' + q + '"]');
      var verdict = box.querySelector(".verdict");
      box.setAttribute("data-status", st.status || "");
      box.setAttribute("data-right", st.status ? String(st.right) : "");
      box.setAttribute("data-mistakes", st.mistakes.map(function (m) { return m.key + ": " + m.says; }).join("\n"));
      box.setAttribute("data-carried", st.from.join(" "));
      verdict.textContent = "";
      if (!st.status) { return; }
      var head = document.createElement("p");
      head.className = "status " + st.status;
      var n = st.numbers.length;
      if (st.status === "right") { head.textContent = "Right."; }
      else if (st.status === "carried_forward") {
        head.textContent = "Carried forward: not the true value, but it follows from your own " + st.from.join(" and ")
          + ": credited (an error carried forward).";
      } else if (st.status === "too_few_digits") {
        var fewest = Math.min.apply(null, st.numbers.filter(function (x, i) { return st.marks[i] === "short"; })
          .map(function (x) { return x.decimals; }));
        head.textContent = "Not precise enough: you gave " + plural(fewest, "decimal") + "; this exercise asks for " + D
          + " (at the precision you gave, your numbers are right).";
      } else {
        head.textContent = "Wrong" + (n > 1 ? " (" + st.right + " of " + n + " numbers right)" : "") + ".";
      }
      verdict.appendChild(head);
      if (st.status === "wrong") {
        var why = document.createElement("p");
        if (st.mistakes.length) {
          why.textContent = st.mistakes.length === 1 ? "Your numbers are what you get if you:"
            : "Your numbers are what you get if you (any one of):";
          var list = document.createElement("ul");
          st.mistakes.forEach(function (m) {
            var li = document.createElement("li");
            li.textContent = m.says;
            list.appendChild(li);
          });
          verdict.appendChild(why);
          verdict.appendChild(list);
        } else {
          why.textContent = "No mistake in the catalogue gives these numbers.";
          verdict.appendChild(why);
        }
        if (st.unknown) {
          var note = document.createElement("p");
          note.className = "note";
          note.textContent = "If this follows from one of your own earlier answers, this page cannot tell: it knows only "
            + "the slips in its catalogue. The command at the end of your sheet works the step again from your numbers.";
          verdict.appendChild(note);
        }
      }
    });
    data.asked.forEach(function (q) {
      var info = byQ[q], st = state[q], points = Number(info.points);
      possible += points;
      if (st.status === "right" || st.status === "carried_forward") { earned += points; return; }
      if (st.status) {
        st.marks.forEach(function (k, i) { if (k === "right") { earned += Number(info.shares[i]); } });
      }
    });
    var answered = data.asked.filter(function (q) { return state[q].status; }).length;
    var score = document.getElementById("score");
    score.textContent = answered ? "Points so far: " + (Math.round(earned * 100) / 100) + " of " + possible
      + " (" + answered + " of " + data.asked.length + " asked quantities answered)." : "";
  }

  function tex(el) {
    try {
      katex.render(el.getAttribute("data-tex"), el, { displayMode: el.classList.contains("display"), throwOnError: true });
    } catch (err) {
      console.error("KaTeX: " + err.message);
      el.textContent = el.getAttribute("data-tex");
    }
  }
  document.querySelectorAll(".math").forEach(tex);
  document.querySelectorAll("input[data-q]").forEach(function (input) { input.addEventListener("input", show); });
  show();
}());
