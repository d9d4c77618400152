"""Messages shared by the sip tests."""

REGISTER = (
    b"REGISTER sip:example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Ted McGraw" <sip:1235@example.com>;tag=1928301774\r\n'
    b"To: <sip:1235@example.com>\r\n"
    b"Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 314159 REGISTER\r\n"
    b"Contact: <sip:1235@192.0.2.10:5060;transport=udp>;expires=3600\r\n"
    b"User-Agent: Test Phone 1.0\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:1234@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnashds8\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:1234@example.com>\r\n"
    b"From: Alice <sip:1235@example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:1235@192.0.2.10>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

RESPONSE_180 = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.20;branch=z9hG4bKproxy1, "
    b"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnashds8\r\n"
    b"To: Bob <sip:1234@example.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:1235@example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
