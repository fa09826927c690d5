// Sends the SAML message on to the service (templates/saml_post.html); the button is the fallback.
document.getElementById("saml-post").submit();
