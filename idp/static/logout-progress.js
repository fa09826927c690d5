// The logout page (templates/logout_progress.html): loads each service's logout in its frame and
// goes on once every service has answered, or when the timeout is up, whichever comes first.
// A SAML service provider's frame answers with a message from our own page (logout-frame-done.js);
// an OIDC relying party's front-channel page answers by loading. The Continue link is the fallback.
(function () {
  "use strict";
  var box = document.getElementById("logout-frames");
  var next = document.getElementById("logout-next").href;
  var waiting = {};
  var left = 0;
  var gone = false;

  function goOn() {
    if (!gone) {
      gone = true;
      window.location.assign(next);
    }
  }

  function answered(index) {
    if (waiting[index]) {
      delete waiting[index];
      left -= 1;
      if (left === 0) {
        goOn();
      }
    }
  }

  window.addEventListener("message", function (event) {
    if (event.origin === window.location.origin && event.data && typeof event.data.loggedOut === "string") {
      answered(event.data.loggedOut);
    }
  });
  box.querySelectorAll("iframe").forEach(function (frame) {
    var index = frame.dataset.index;
    waiting[index] = true;
    left += 1;
    if (frame.dataset.protocol === "oidc") {
      frame.addEventListener("load", function () { answered(index); });
    }
    frame.src = frame.dataset.src;
  });
  if (left === 0) {
    goOn();
  }
  window.setTimeout(goOn, Number(box.dataset.timeout));
}());
