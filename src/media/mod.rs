//! Install media: the kickstart ISO and a remastered CentOS 6 install ISO, built with xorriso.
