<?xml version="1.0" encoding="UTF-8"?>
<!--
  Preset: a fixed-width text file, one line per row (xslt_scope: item).

  Each column becomes a field of WIDTH characters: its text, cut or padded with spaces on the
  right; a NULL is all spaces. Copy this file and edit WIDTH, or write one template per column
  for different widths.

    format: xml
    format_options: {xslt: definitions/fixed_width.xsl}      # files end in .txt
-->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="text" media-type="text/plain" encoding="UTF-8"/>
  <xsl:variable name="WIDTH" select="16"/>
  <xsl:variable name="SPACES" select="'                                                                '"/>

  <xsl:template match="/item">
    <xsl:for-each select="*">
      <xsl:value-of select="substring(concat(., $SPACES), 1, $WIDTH)"/>
    </xsl:for-each>
    <xsl:text>&#10;</xsl:text>
  </xsl:template>
</xsl:stylesheet>
