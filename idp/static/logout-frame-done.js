// In a frame of the logout page (templates/logout_frame_done.html): this service has answered.
(function () {
  "use strict";
  var index = document.getElementById("logout-answer").dataset.index;
  window.parent.postMessage({loggedOut: index}, window.location.origin);
}());
